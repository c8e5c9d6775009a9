"""The ``s3`` artifact store end to end, on moto's S3 server (tests/s3.py): pipelines run on a
stack whose artifacts live in a bucket, read back from another process with only the stack's
configuration, cache hits checked without downloads, deletions and checks reaching the
bucket, credentials kept out of everything recorded, and the store's failures (unreachable
endpoint, missing bucket, refused credentials, throttling) as one line each.

The contract every artifact store keeps runs on ``s3`` in ``tests/test_artifact_store_contract.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeledger import Client
from pipeledger.artifacts.files import MANIFEST
from pipeledger.cli.main import cli
from pipeledger.exceptions import ArtifactStoreUnavailableError, RunFailedError
from pipeledger.maintenance import find_orphans, remove_orphans
from pipeledger.stack.registry import close_stacks, get_stack
from tests import pipelines as P
from tests.s3 import TEST_SECRET, FaultyHttpProxy, MotoS3, free_port, register_s3_stack

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def s3_root(s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The active stack's artifact store is ``team`` (flavor s3) on a new bucket; its root URI."""
    return register_s3_stack(monkeypatch, s3_server.endpoint, s3_bucket)


def objects(s3_server: MotoS3, root: str) -> list[str]:
    """Every object under ``root`` (s3:// URIs), from the server."""
    fs = s3_server.filesystem()
    path = root.removeprefix("s3://")
    return sorted(f"s3://{p}" for p in fs.find(path)) if fs.exists(path) else []


def test_a_run_on_s3_is_recorded_with_s3_uris_and_read_back_by_a_fresh_process(s3_server: MotoS3, s3_root: str) -> None:
    run = P.training(lr=0.25)
    model = run.steps["train"].outputs["model"]
    assert model.uri.startswith(f"{s3_root}/stores/") and model.artifact_store == "team"
    assert model.read() == {"w": 0.25, "n": 4}
    stored = objects(s3_server, s3_root)
    assert f"{model.uri}/data.json" in stored and f"{model.uri}/{MANIFEST}" in stored
    assert run.steps["load"].logs.startswith("loading 4 rows")  # logs are in the bucket too
    assert any(u.endswith("/logs.txt") for u in stored)

    # Another process, given only $PIPELEDGER_HOME (the stack's configuration) and the variables
    # its secret references name, reads the artifact from the bucket.
    code = (
        f"from pipeledger import Client\nprint(Client().get_run({run.name!r}).steps['train'].outputs['model'].read())\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'w': 0.25, 'n': 4}"


def test_the_second_run_hits_the_cache_and_checks_the_manifest_without_downloading(
    s3_server: MotoS3, s3_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = P.training()
    proxy = FaultyHttpProxy(s3_server.port)  # counts the requests of the second run
    try:
        register_s3_stack(monkeypatch, proxy.endpoint, s3_root.split("/")[2], name="viaproxy")  # same bucket
        close_stacks()
        second = P.training()
    finally:
        proxy.stop()
    assert all(s.status.value == "cached" for s in second.steps.values())
    for name, step in second.steps.items():
        assert step.cached_from.run.name == first.name, name
        assert {n: a.uri for n, a in step.outputs.items()} == {n: a.uri for n, a in first.steps[name].outputs.items()}
    # No data object was read: the cache hits looked at manifests (HEAD requests, no body); the
    # only body is the artifact store's small .owner.json, read once per process.
    assert 0 < proxy.requests <= 12 and proxy.bytes_sent < 1024, (proxy.requests, proxy.bytes_sent)

    # An artifact whose manifest is gone no longer counts: its step recomputes.
    s3_server.filesystem().rm_file(f"{first.steps['load'].output.uri.removeprefix('s3://')}/{MANIFEST}")
    close_stacks()
    register_s3_stack(monkeypatch, s3_server.endpoint, s3_root.split("/")[2], name="direct")
    third = P.training()
    assert third.steps["load"].status.value == "completed"


def test_run_delete_and_gc_remove_the_objects_and_check_deep_finds_what_changed(
    s3_server: MotoS3, s3_root: str
) -> None:
    first, second = P.training(lr=0.1), P.training(lr=0.2)
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert (code, err) == (0, ""), out + err
    assert "no problem found" in out

    # check --deep re-hashes the objects: a changed one is found, then a deleted one.
    fs = s3_server.filesystem()
    model = second.steps["train"].outputs["model"].uri
    fs.pipe_file(f"{model.removeprefix('s3://')}/data.json", b'{"w": 0.99, "n": 4}')
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert (
        code == 1
        and f"artifact whose content does not match the recorded hash (files changed or removed): {model}" in err
        and "Traceback" not in out + err
    )
    accuracy = second.steps["train"].outputs["accuracy"].uri  # its data object deleted, its manifest kept
    fs.rm_file(f"{accuracy.removeprefix('s3://')}/data.json")
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert (
        code == 1
        and "2 artifacts whose content does not match the recorded hash (files changed or removed): " in err
        and model in err
        and accuracy in err
    )
    fs.rm(model.removeprefix("s3://"), recursive=True)  # the whole artifact deleted
    code, out, err = invoke("metadata-store", "check", "--deep")
    assert code == 1 and f"1 artifact whose files are missing: {model}" in err

    # run delete removes the run's objects (those of artifacts no other run uses).
    doomed = [a.uri for s in first.steps.values() for a in s.outputs.values()]
    kept = [a.uri for s in second.steps.values() for a in s.outputs.values() if a.uri not in (model, accuracy)]
    code, out, err = invoke("run", "delete", first.name, "--yes")
    assert (code, err) == (0, ""), out + err
    stored = objects(s3_server, s3_root)
    shared = {a.uri for s in second.steps.values() for a in s.outputs.values()}
    for uri in doomed:
        assert (uri in shared) == any(o.startswith(uri + "/") for o in stored), uri
    assert all(any(o.startswith(uri + "/") for o in stored) for uri in kept)

    # gc's retention removes the rest; orphans (files without a record) go too.
    stray = f"{s3_root}/stores/{Client().store.store_id()}/training/training-9-{'a' * 32}/load-{'b' * 32}"
    fs.pipe_file(f"{stray.removeprefix('s3://')}/output/{'c' * 32}/data.json", b"[1]")  # no manifest, no record
    code, out, err = invoke("gc", "--keep-last", "0", "--yes")
    assert (code, err) == (0, ""), out + err
    assert not [o for o in objects(s3_server, s3_root) if "/training-" in o and "stores/" in o and stray not in o]
    stack = get_stack()
    report = find_orphans(stack.metadata_store, stack.artifact_store, grace=0)
    assert [p.removeprefix(s3_root.removeprefix("s3://")) for p in report.paths] == [
        f"/stores/{Client().store.store_id()}/training/training-9-{'a' * 32}/load-{'b' * 32}/output/{'c' * 32}"
    ]
    assert remove_orphans(stack.artifact_store, report) == 1
    assert not [o for o in objects(s3_server, s3_root) if "/output/" in o]


def test_credentials_never_reach_the_config_the_snapshot_the_logs_or_lineage(
    s3_server: MotoS3, s3_root: str, home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = P.training()
    code, out, err = invoke("artifact-store", "describe", "team")
    assert code == 0 and "${env:PL_TEST_S3_SECRET}" in out
    recorded = [
        (home / "config.yaml").read_text(),
        json.dumps(run.stack),
        out,
        *(s.logs for s in run.steps.values()),
        json.dumps(run.steps["evaluate"].inputs["model"].lineage("both").to_openlineage()),
    ]
    code, out, err = invoke("run", "show", run.name)
    recorded += [out, err, *capfd.readouterr()]
    for text in recorded:
        assert TEST_SECRET not in text
    assert "s3" in json.dumps(run.stack) and s3_root in json.dumps(run.stack)
    # OpenLineage names S3 datasets by bucket (namespace) and key (name).
    events = run.steps["evaluate"].inputs["model"].lineage("both").to_openlineage()
    model = run.steps["train"].outputs["model"].uri
    datasets = [d for e in events for d in e["inputs"] + e["outputs"]]
    bucket, key = model.removeprefix("s3://").split("/", 1)
    assert {"namespace": f"s3://{bucket}", "name": key} in [{k: d[k] for k in ("namespace", "name")} for d in datasets]


def test_a_literal_secret_is_refused_at_registration() -> None:
    code, out, err = invoke(
        "artifact-store", "register", "leaky", "--flavor=s3", "--path=s3://b/p", "--key=AKIA", f"--secret={TEST_SECRET}"
    )
    assert code == 1 and "clear-text secret" in err and TEST_SECRET not in out + err


@pytest.mark.parametrize("problem", ["no bucket", "unreachable", "wrong credentials"])
def test_an_unusable_store_fails_in_one_line_naming_store_bucket_and_cause(
    problem: str, s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    endpoint, bucket = s3_server.endpoint, s3_bucket
    expected = {
        "no bucket": "does not exist",
        "unreachable": "cannot reach the endpoint",
        "wrong credentials": "refused",
    }
    if problem == "no bucket":
        bucket = "pl-missing-bucket"
    if problem == "unreachable":
        endpoint = f"http://127.0.0.1:{free_port()}"
    with s3_server.enforcing_credentials() if problem == "wrong credentials" else nullcontext():
        register_s3_stack(monkeypatch, endpoint, bucket, secret="wrong-" + TEST_SECRET)
        with pytest.raises(RunFailedError) as failed:
            P.training()
        code, out, _ = invoke("run", "list")
    message = str(failed.value)
    assert isinstance(failed.value.__cause__, ArtifactStoreUnavailableError)
    assert "artifact store 'team'" in message and bucket in message and expected[problem] in message, message
    assert "\n" not in message and TEST_SECRET not in message + "".join(capfd.readouterr())
    assert code == 0 and "failed" in out  # the run is recorded failed, nothing left running


def test_throttling_answers_are_retried(s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = FaultyHttpProxy(s3_server.port, fail_first=2)
    try:
        register_s3_stack(monkeypatch, proxy.endpoint, s3_bucket)  # 3 attempts per request
        run = P.training()
        assert run.status.value == "completed"
        assert proxy.failed == 2 and proxy.requests > 2
        assert run.steps["train"].outputs["model"].read() == {"w": 0.01, "n": 4}
    finally:
        proxy.stop()


def test_an_endpoint_lost_mid_run_fails_the_run_cleanly_and_a_rerun_completes(
    s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = FaultyHttpProxy(s3_server.port)
    root = register_s3_stack(monkeypatch, proxy.endpoint, s3_bucket)
    monkeypatch.setattr(P, "STOP_ENDPOINT", proxy.stop, raising=False)
    with pytest.raises(RunFailedError) as failed:
        P.lose_the_store()
    assert "cannot reach the endpoint" in str(failed.value) and "\n" not in str(failed.value)
    run = Client().get_run(failed.value.run_name)
    assert run.status.value == "failed"
    assert run.steps["first"].status.value == "completed" and run.steps["second"].status.value == "failed"
    assert not run.steps["second"].outputs  # nothing recorded, so nothing half-visible
    # Nothing that exists is half-written: every artifact directory in the bucket has its manifest.
    stored = objects(s3_server, root)
    dirs = {o.rsplit("/", 1)[0] for o in stored if "/output/" in o}
    assert all(f"{d}/{MANIFEST}" in stored for d in dirs)

    close_stacks()
    register_s3_stack(monkeypatch, s3_server.endpoint, s3_bucket, name="back")
    monkeypatch.setattr(P, "STOP_ENDPOINT", lambda: None)
    rerun = P.lose_the_store()
    assert rerun.steps["first"].status.value == "cached" and rerun.steps["second"].status.value == "completed"
    assert rerun.steps["second"].output.read() == 2


STREAMING = """
import json, sys
import numpy as np
from pipeledger.artifacts.materializers import default_registry
from pipeledger.models import ArtifactRecord
from pipeledger.stack.registry import get_stack
from pipeledger.testing.artifact_store import new_id, record_of, step_dir

def peak():  # this process's peak RSS (VmHWM; ru_maxrss would start at the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

store = get_stack().artifact_store
store.exists(store.artifact_uri(step_dir(store), "warm-up", new_id()))  # the S3 client is made now
registry = default_registry()  # imports pandas and pyarrow: not the store's memory
mib = int(sys.argv[2])
if sys.argv[1] == "write":
    value = np.arange(mib * 2**20 // 8, dtype=np.float64)
    before = peak()
    artifact_id = new_id()
    uri = store.artifact_uri(step_dir(store), "big", artifact_id)
    record = record_of(store.write(value, uri, artifact_id, registry), artifact_id)
    print(json.dumps({"extra": peak() - before, "record": record.__dict__}, default=str))
else:
    fields = json.loads(sys.argv[3])
    fields["created_at"] = None
    before = peak()
    back = store.read(ArtifactRecord(**fields), registry)
    assert back.nbytes == mib * 2**20 and back[-1] == mib * 2**20 // 8 - 1
    print(json.dumps({"extra": peak() - before - back.nbytes / 2**20}))
"""


def test_large_artifacts_stream_without_a_second_copy_in_memory(
    s3_server: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 160 MiB array is uploaded in 8 MiB parts from a local file and read back in blocks, each
    in a process of its own: peak memory grows by a bounded amount beyond the array, well below
    the size of a second copy (benchmarks/RESULTS.md has the 1 GB figure)."""
    register_s3_stack(monkeypatch, s3_server.endpoint, s3_bucket, extra=("--parallel-parts=2",))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

    def measure(*args: str) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", STREAMING, *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    wrote = measure("write", "160")
    read = measure("read", "160", json.dumps(wrote["record"]))
    assert float(wrote["extra"]) < 80 and float(read["extra"]) < 80, (wrote["extra"], read["extra"])  # a copy: 160
