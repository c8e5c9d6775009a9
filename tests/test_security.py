"""Security: no credential in what is recorded or exported, artifacts whose files changed are
refused before they are loaded, and the home, database and artifact store are private."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pipeledger.cli.main import cli
from pipeledger.lineage.openlineage import run_events
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor
from pipeledger.stack.registry import close_stacks
from pydantic import Field
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
    locations = {e["job"]["facets"]["sourceCodeLocation"]["url"] for e in events}
    assert locations == {"https://git.example.com/org/repo.git"}
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
    invoke("stack", "list")  # reading alone creates nothing
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
