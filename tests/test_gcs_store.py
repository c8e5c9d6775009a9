"""The ``gcs`` artifact store on gcp-storage-emulator (tests/gcs.py): a run recorded with gs://
URIs and read back, a cache hit, deletion reaching the bucket, and the store's failures as one
line. The emulator checks no credentials, so refused credentials are tested on ``s3`` only
(tests/test_s3_store.py); the contract suite runs on ``gcs`` in test_artifact_store_contract.py."""

from __future__ import annotations

import pytest

from pipeledger.artifacts.files import MANIFEST
from pipeledger.exceptions import ArtifactStoreUnavailableError, RunFailedError
from tests import pipelines as P
from tests.gcs import GcsEmulator
from tests.s3 import free_port, ok

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # google-api-core on Python 3.11


def register_gcs_stack(endpoint: str, bucket: str) -> str:
    root = f"gs://{bucket}/artifacts"
    ok("artifact-store", "register", "gteam", "--flavor=gcs", f"--path={root}", f"--endpoint-url={endpoint}")
    ok("stack", "register", "gteam", "--artifact-store", "gteam", "--set")
    return root


def test_a_run_on_gcs_is_recorded_cached_and_deleted(gcs_server: GcsEmulator) -> None:
    root = register_gcs_stack(gcs_server.endpoint, gcs_server.new_bucket())
    first = P.training(lr=0.5)
    model = first.steps["train"].outputs["model"]
    assert model.uri.startswith(f"{root}/stores/") and model.read() == {"w": 0.5, "n": 4}
    fs = gcs_server.filesystem()
    assert fs.exists(f"{model.uri.removeprefix('gs://')}/{MANIFEST}")
    second = P.training(lr=0.5)
    assert all(s.is_cached for s in second.steps.values())
    ok("metadata-store", "check", "--deep")
    ok("gc", "--keep-last", "0", "--yes")
    assert not [p for p in fs.find(root.removeprefix("gs://")) if "/training/" in p]


@pytest.mark.parametrize("problem", ["no bucket", "unreachable"])
def test_an_unusable_gcs_store_fails_in_one_line(
    problem: str, gcs_server: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    if problem == "no bucket":
        register_gcs_stack(gcs_server.endpoint, "pl-missing-bucket")
        expected = "bucket pl-missing-bucket does not exist"
    else:
        register_gcs_stack(f"http://127.0.0.1:{free_port()}", "pl-any")
        expected = "cannot reach the endpoint"
        # gcsfs retries a refused connection 6 times with a fixed backoff (about 18 s per request,
        # not configurable per filesystem): its sleeps are shortened here, not its attempts.
        import gcsfs.retry

        real_sleep = gcsfs.retry.asyncio.sleep
        monkeypatch.setattr(
            gcsfs.retry.asyncio, "sleep", lambda delay, *args, **kwargs: real_sleep(min(delay, 0.01), *args, **kwargs)
        )
    with pytest.raises(RunFailedError) as failed:
        P.training()
    assert isinstance(failed.value.__cause__, ArtifactStoreUnavailableError)
    message = str(failed.value)
    assert "artifact store 'gteam'" in message and expected in message and "\n" not in message, message
