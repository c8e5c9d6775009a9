"""Security: no credential in what is recorded or exported, artifacts whose files changed are
refused before they are loaded, and the home, database and artifact store are private."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner
from pydantic import Field
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

from pipeledger import ArtifactIntegrityError, PipeledgerWarning, RunFailedError, pipeline, step
from pipeledger.cli.main import cli
from pipeledger.lineage.openlineage import run_events
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor
from pipeledger.stack.registry import close_stacks
from tests import pipelines as P

TOKEN = "ghp_s3cretT0ken"

FLOW = """
from pipeledger import pipeline, step


@step
def produce() -> list:
    return [1, 2, 3]


@pipeline
def tokenflow():
    produce()
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def repo_with_token_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A git repository whose origin URL holds a token, with a pipeline module in it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    module = f"tokenflow_{tmp_path.name.replace('-', '_').lower()[-20:]}"
    (repo / f"{module}.py").write_text(FLOW)
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", f"https://user:{TOKEN}@git.example.com/org/repo.git?private_token={TOKEN}")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flow")
    monkeypatch.syspath_prepend(str(repo))
    yield module
    sys.modules.pop(module, None)


def test_git_remote_credentials_are_neither_recorded_nor_exported(repo_with_token_remote: str) -> None:
    flow = importlib.import_module(repo_with_token_remote)

    run = flow.tokenflow()

    assert run.environment["git"]["remote"] == "https://git.example.com/org/repo.git"
    assert TOKEN not in json.dumps(run.environment) + json.dumps(run.stack)
    events = run_events(run)
    locations = {e["job"]["facets"]["sourceCodeLocation"]["repoUrl"] for e in events}
    assert locations == {"https://git.example.com/org/repo.git"}
    assert TOKEN not in json.dumps(events)
    exported = invoke("run", "export-openlineage", run.name)
    assert exported.exit_code == 0, exported.output
    assert TOKEN not in exported.stdout and "git.example.com/org/repo.git" in exported.stdout


class UrlConfig(FlavorConfig):
    """A store configured with a service URL (recorded in stack snapshots)."""

    url: str = Field(description="The service's URL.")
    path: str = Field(description="The SQLite file standing in for the service.")


class UrlFlavor(MetadataStoreFlavor):
    """A store whose configuration holds a URL; the data goes to a SQLite file."""

    name = "urlstore"
    description = "Test store configured by URL."
    integration = "tests"
    config_class = UrlConfig

    def create(self, component_name: str, config: UrlConfig, home: Path) -> SqlMetadataStore:
        return SqlMetadataStore(Database(f"sqlite:///{config.path}", display_name=config.url), flavor=self.name)


def test_urls_in_stack_snapshots_and_descriptions_lose_their_credentials(tmp_path: Path) -> None:
    url = f"https://admin:{TOKEN}@meta.example.com/api?X-Amz-Signature={TOKEN}&region=eu"
    for args in (
        ("metadata-store", "flavor", "register", "tests.test_security:UrlFlavor"),
        ("metadata-store", "register", "svc", "--flavor=urlstore", f"--url={url}", f"--path={tmp_path / 'm.db'}"),
        ("stack", "register", "svc", "-m", "svc", "--set"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output

    run = P.training()

    assert run.stack["metadata_store"]["config"]["url"] == "https://meta.example.com/api?region=eu"
    assert TOKEN not in json.dumps(run.stack) + json.dumps(run_events(run))
    for args in (("stack", "describe"), ("metadata-store", "describe", "svc")):
        shown = invoke(*args)
        assert shown.exit_code == 0 and "meta.example.com" in shown.stdout and TOKEN not in shown.stdout


def test_an_artifact_store_path_with_credentials_is_refused() -> None:
    result = invoke("artifact-store", "register", "web", "--flavor=local", f"--path=https://u:{TOKEN}@host/artifacts")

    assert result.exit_code != 0
    assert "a user name and password" in result.stderr and TOKEN not in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("postgresql://u:pw@db:5432/meta", "postgresql://db:5432/meta"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=s&versionId=2", "https://b.s3.amazonaws.com/k?versionId=2"),
        ("https://acct.blob.core.windows.net/c?sv=2022&sig=s", "https://acct.blob.core.windows.net/c?sv=2022"),
        ("https://h/p?access_token=s#frag", "https://h/p#frag"),
        ("sqlite:////abs/path/metadata.db", "sqlite:////abs/path/metadata.db"),
        ("/a/local/path", "/a/local/path"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    from pipeledger.redact import redact_text, redact_url

    assert redact_url(url) == redacted
    assert redact_text(f"cannot reach {url}: refused") == f"cannot reach {redacted}: refused"


# ------------------------------------------------------------------ file permissions


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common umask, under which files are world-readable unless pipeledger says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes_under(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and of everything under it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_home_database_logs_and_artifacts_are_private_whatever_the_umask(home: Path, umask_022: None) -> None:
    run = P.training()  # prints and logs: step logs are written too
    assert run.steps["load"].logs  # the walk below covers a logs file
    assert invoke("artifact-store", "register", "other", "--flavor=local").exit_code == 0  # writes config.yaml

    modes = modes_under(home)
    assert {"metadata.db", "config.yaml", "artifacts"} <= set(modes)
    assert any(name.endswith("logs.txt") for name in modes)
    assert any(name.endswith("-wal") for name in modes)  # SQLite's WAL file exists while the store is open
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert loose == {}
    dirs = {name for name in modes if (home / name).is_dir()}
    assert all(modes[d] == 0o700 for d in dirs) and all(modes[f] == 0o600 for f in set(modes) - dirs)


def test_an_existing_world_readable_home_and_database_are_made_private(home: Path, umask_022: None) -> None:
    P.training()
    close_stacks()
    for path in (home, home / "metadata.db", home / "artifacts"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    P.training(lr=0.5)  # a new artifact: the artifact store root gets its mode when it writes

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "metadata.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "artifacts").stat().st_mode) == 0o700


def test_a_group_shared_store(tmp_path: Path, umask_022: None) -> None:
    shared = tmp_path / "shared"
    for args in (
        (
            "artifact-store",
            "register",
            "team",
            "--flavor=local",
            f"--path={shared / 'artifacts'}",
            "--permissions=group",
        ),
        ("metadata-store", "register", "team", "--flavor=sqlite", f"--path={shared / 'm.db'}", "--permissions=group"),
        ("stack", "register", "team", "-a", "team", "-m", "team", "--set"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output

    P.training()

    modes = modes_under(shared)
    for name, mode in modes.items():
        expected = 0o770 if (shared / name).is_dir() else 0o660
        assert mode & 0o777 == expected, (name, oct(mode))
    assert modes["artifacts"] & stat.S_ISGID  # new files keep the directory's group
    bad = invoke("artifact-store", "register", "x", "--flavor=local", "--permissions=world")
    assert bad.exit_code == 1 and "permissions" in bad.stderr and "Traceback" not in bad.output


# ------------------------------------------------------------- artifacts that run code


class Opaque:
    """A value without a materializer: pickled."""

    def __init__(self, n: int) -> None:
        self.n = n


class Evil:
    """Unpickling it creates the directory ``path``: proof that code from the file ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.mkdir, (str(self.path),))


@step
def make_opaque(n: int = 3) -> Annotated[Opaque, "value"]:
    return Opaque(n)


@step
def use_opaque(value: Opaque) -> Annotated[int, "n"]:
    return value.n


@step
def swap_pickles(marker: str = "") -> None:
    """Replace every pickled artifact of the artifact store by one that runs code."""
    for found in Path(os.environ["PIPELEDGER_HOME"], "artifacts").rglob("data.pkl"):
        found.write_bytes(pickle.dumps(Evil(Path(marker))))


@pipeline
def opaque_flow(n: int = 3):
    use_opaque(make_opaque(n=n))


@pipeline
def swapped_between_steps(marker: str):
    value = make_opaque()
    swap_pickles(marker=marker)
    use_opaque(value)


def swap_pickle_of(artifact: Any, marker: Path) -> None:
    path = Path(artifact.uri) / "data.pkl"
    assert path.exists()
    path.write_bytes(pickle.dumps(Evil(marker)))


@pytest.fixture
def quiet_pickles() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipeledgerWarning)
        yield


def test_a_swapped_pickle_is_refused_by_read(tmp_path: Path, quiet_pickles: None) -> None:
    run = opaque_flow()
    artifact = run.steps["make_opaque"].output
    assert artifact.read().n == 3
    marker = tmp_path / "code-ran"
    swap_pickle_of(artifact, marker)

    with pytest.raises(ArtifactIntegrityError) as raised:
        artifact.read()

    assert not marker.exists()
    message = str(raised.value)
    assert artifact.id in message and artifact.content_hash in message and "changed after it was recorded" in message
    found = hashlib.sha256(b"data.pkl\0" + (Path(artifact.uri) / "data.pkl").read_bytes() + b"\0").hexdigest()
    assert found in message and len(message.splitlines()) == 1


def test_a_swapped_pickle_is_not_reused_from_the_cache(tmp_path: Path, quiet_pickles: None) -> None:
    first = opaque_flow()
    marker = tmp_path / "code-ran"
    swap_pickle_of(first.steps["make_opaque"].output, marker)

    second = opaque_flow()

    assert not marker.exists()
    produced = second.steps["make_opaque"]
    assert produced.status == "completed"  # recomputed, not reused
    assert "changed after they were recorded" in produced.config["cache"]["explanation"]
    assert second.steps["use_opaque"].output.read() == 3


def test_a_pickle_swapped_before_a_step_reads_it_fails_the_step_without_running_its_code(
    tmp_path: Path, quiet_pickles: None
) -> None:
    marker = tmp_path / "code-ran"

    with pytest.raises(RunFailedError) as raised:
        swapped_between_steps(marker=str(marker))

    assert not marker.exists()
    assert raised.value.step_name == "use_opaque"
    assert isinstance(raised.value.__cause__, ArtifactIntegrityError)


def test_data_only_formats_are_read_without_hashing(home: Path) -> None:
    """A deliberate choice: a changed JSON file cannot run code; it reads as changed, and
    `metadata-store check --deep` reports it."""
    run = P.training()
    model = run.steps["train"].outputs["model"]
    (Path(model.uri) / "data.json").write_text('{"w": 99}')

    assert model.read() == {"w": 99}
    check = invoke("metadata-store", "check", "--deep")
    assert check.exit_code == 1 and model.id in check.output


@step
def fit_forest() -> Annotated[RandomForestClassifier, "model"]:
    features, labels = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(features, labels)


@step
def fit_with_a_lambda() -> Annotated[FunctionTransformer, "transformer"]:
    return FunctionTransformer(func=lambda x: [[v + 1 for v in row] for row in x]).fit([[1.0]])


@pipeline
def forest_flow():
    fit_forest()


@pipeline
def lambda_flow():
    fit_with_a_lambda()


def test_scikit_learn_models_are_stored_with_skops_not_pickle() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pickle warning
        run = forest_flow()

    model = run.steps["fit_forest"].output
    assert model.materializer == "pipeledger.artifacts.materializers.optional.SkopsMaterializer"
    assert sorted(p.name for p in Path(model.uri).iterdir()) == ["model.skops", "trusted.json"]
    assert model.metadata["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert {"scikit-learn", "skops"} <= set(model.metadata["packages"])
    features, _ = load_iris(return_X_y=True)
    assert (model.read().predict(features) == fit_forest.func().predict(features)).all()

    # the trusted types come from the files: a changed trusted.json is refused
    (Path(model.uri) / "trusted.json").write_text('{"trusted": ["sklearn.tree._tree.Tree", "builtins.eval"]}')
    with pytest.raises(ArtifactIntegrityError):
        model.read()


def test_an_estimator_skops_cannot_store_falls_back_to_pickle() -> None:
    with pytest.warns(PipeledgerWarning, match="FunctionTransformer"):
        run = lambda_flow()

    transformer = run.steps["fit_with_a_lambda"].output
    assert transformer.materializer == "pipeledger.artifacts.materializers.builtin.PickleMaterializer"
    assert transformer.read().transform([[1.0]]) == [[2.0]]
    assert "scikit-learn" in transformer.metadata["packages"] and transformer.metadata["python_version"]


def test_a_pickle_without_a_recorded_hash_is_not_loaded(tmp_path: Path, quiet_pickles: None) -> None:
    import dataclasses

    from pipeledger.artifacts.materializers import default_registry
    from pipeledger.artifacts.store import read_artifact

    record = opaque_flow().steps["make_opaque"].output._record
    unhashed = dataclasses.replace(record, content_hash="")  # as an imported artifact may be

    with pytest.raises(ArtifactIntegrityError, match="no recorded content hash"):
        read_artifact(unhashed, default_registry())


CACHED_FOREST = """
import sys
from sklearn.ensemble import RandomForestClassifier
from pipeledger import pipeline, step

@step
def fit() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=2, random_state=0).fit([[0.0], [1.0]], [0, 1])

@pipeline
def cached_forest():
    fit()

if __name__ == "__main__":
    run = cached_forest()
    print(run.steps["fit"].status.value, "skops.io" in sys.modules)
"""


def test_a_cache_hit_of_a_skops_model_does_not_import_skops(tmp_path: Path) -> None:
    """Checking a hit needs the materializer's version, not skops (whose import costs more than
    a cached run): skops is imported only to save or load an estimator."""
    script = tmp_path / "cached_forest.py"
    script.write_text(CACHED_FOREST)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    outputs = [
        subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert outputs[0].split()[-2:] == ["completed", "True"]
    assert outputs[1].split()[-2:] == ["cached", "False"]
