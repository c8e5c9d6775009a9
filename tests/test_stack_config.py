"""The configuration file and stacks: safe concurrent edits, clear errors on corruption,
secrets kept out of every file and record, named stacks, and the stack snapshot of runs."""

from __future__ import annotations

import ast
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from filelock import FileLock

import pipeledger.stack
from pipeledger import Client
from pipeledger.cli.main import cli
from pipeledger.exceptions import ComponentNotFoundError, ConfigError, NotFoundError
from pipeledger.stack.config import ConfigStore
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager
from pipeledger.stack.registry import close_stacks, get_stack
from tests import pipelines as P
from tests.flavors import FakeMysqlFlavor, MigratingFlavor

SECRET = "Zq7-pipeledger-test-secret-9f3"


def ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, f"`pipeledger {' '.join(args)}` failed: {result.stderr}{result.exception!r}"
    return result.stdout


def refused(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------ concurrent edits


def _register_many(home: str, prefix: str, count: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait(30)
    manager = StackManager(Path(home))
    for i in range(count):
        manager.register_component(ComponentType.ARTIFACT_STORE, f"{prefix}-{i}", "local", {})


def test_two_processes_registering_concurrently_lose_nothing(home: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_register_many, args=(str(home), prefix, 20, start)) for prefix in ("a", "b")]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0

    data = yaml.safe_load((home / "config.yaml").read_text())
    expected = {f"{p}-{i}" for p in "ab" for i in range(20)}
    assert set(data["components"]["artifact_store"]) == expected
    assert [n for n, _ in StackManager(home).list_components(ComponentType.ARTIFACT_STORE)] == [
        "default",
        *sorted(expected),
    ]
    assert not list(home.glob(".config-*"))  # no temporary file left behind


def test_two_processes_running_the_cli_concurrently_lose_nothing(home: Path) -> None:
    command = [sys.executable, "-c", "from pipeledger.cli.main import main; main()"]
    failures: list[str] = []

    def register(prefix: str) -> None:
        for i in range(10):
            result = subprocess.run(
                [*command, "artifact-store", "register", f"{prefix}-{i}", "--flavor=local"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if result.returncode != 0:
                failures.append(result.stderr)

    threads = [threading.Thread(target=register, args=(p,)) for p in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    names = set(ConfigStore(home).load().components[ComponentType.ARTIFACT_STORE])
    assert names == {f"{p}-{i}" for p in "xy" for i in range(10)}


def test_an_edit_that_raises_writes_nothing(home: Path) -> None:
    manager = StackManager(home)
    manager.register_component(ComponentType.ARTIFACT_STORE, "kept", "local", {})
    before = (home / "config.yaml").read_bytes()
    with pytest.raises(RuntimeError), manager.store.edit() as config:
        config.components[ComponentType.ARTIFACT_STORE].clear()
        raise RuntimeError("changed my mind")
    assert (home / "config.yaml").read_bytes() == before


def test_a_held_lock_times_out_with_a_clear_error(home: Path) -> None:
    StackManager(home).register_component(ComponentType.ARTIFACT_STORE, "x", "local", {})
    store = ConfigStore(home, lock_timeout=0.2)
    with FileLock(str(home / "config.yaml.lock")), pytest.raises(ConfigError) as error:  # noqa: SIM117
        with store.edit():
            pass
    assert "another pipeledger process is editing" in str(error.value)
    assert str(store.path) in str(error.value)
    store.load()  # reading needs no lock


# ------------------------------------------------------------------ corrupted file


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"stacks: [unterminated\n", "while parsing"),
        (b"- just\n- a list\n", "top level"),
        (b"components: {}\nsurprise: 1\n", "surprise: Extra inputs are not permitted"),
        (b"stacks:\n  s: {orchestrator: default}\n", "stacks.s.artifact_store: Field required"),
        (b"components:\n  scheduler: {}\n", "components.scheduler"),
        (b"version: 1\nactive_stack: [1, 2]\n", "active_stack"),
        (b"\xff\xfe\x00\x01binary", "not UTF-8"),
        (b"stacks:\n  s: {orchestrator: default, artifact_st", "while parsing a flow mapping"),  # torn
    ],
)
def test_a_corrupted_config_file_gives_a_clear_config_error(home: Path, content: bytes, detail: str) -> None:
    home.mkdir(parents=True)
    (home / "config.yaml").write_bytes(content)
    store = ConfigStore(home)
    with pytest.raises(ConfigError) as error:
        store.load()
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert f"{home / 'config.yaml'} is not a valid pipeledger configuration" in message
    assert detail in message and "fix it or move it away" in message
    # Every way in says the same.
    with pytest.raises(ConfigError):
        P.training()
    with pytest.raises(ConfigError):
        StackManager(home).register_component(ComponentType.ARTIFACT_STORE, "x", "local", {})
    assert (home / "config.yaml").read_bytes() == content  # left for the user to fix
    assert "not a valid pipeledger configuration" in refused("stack", "list")


def test_an_empty_config_file_means_the_defaults(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.yaml").write_text("# nothing yet\n")
    assert ConfigStore(home).load().stack_names() == ["default"]
    assert P.training().stack["name"] == "default"


def test_an_unknown_active_stack_is_refused_naming_the_stacks(home: Path) -> None:
    """A mistyped ``active_stack`` never silently records into another stack."""
    ok("metadata-store", "register", "prod", "--flavor=sqlite")
    ok("stack", "register", "prod", "-m", "prod")
    config = (home / "config.yaml").read_text()
    (home / "config.yaml").write_text(config.replace("active_stack: default", "active_stack: prdo"))
    expected = "the active stack 'prdo' (active_stack in "
    with pytest.raises(ComponentNotFoundError, match=r"^the active stack 'prdo' .*registered stacks: default, prod;"):
        StackManager(home).active_stack_name()
    with pytest.raises(ComponentNotFoundError, match="registered stacks: default, prod"):
        P.training()
    assert not (home / "metadata.db").exists() and not (home / "metadata-prod.db").exists()  # nothing recorded
    for args in (("run", "list"), ("stack", "describe"), ("metadata-store", "list")):
        line = refused(*args)
        assert line.startswith(f"Error: {expected}") and "`pipeledger stack set NAME`" in line, line
    assert "prod" in ok("stack", "list")  # still lists the stacks to choose from
    ok("stack", "set", "prod")
    assert P.training().stack["name"] == "prod"


# -------------------------------------------------------------------------- secrets


@pytest.fixture
def secret_stack(monkeypatch: pytest.MonkeyPatch) -> str:
    """A stack whose metadata store has a password, given as ``${env:TEST_DB_PASSWORD}``."""
    monkeypatch.setenv("TEST_DB_PASSWORD", SECRET)
    monkeypatch.setattr(FakeMysqlFlavor, "passwords_seen", [])
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    ok(
        "metadata-store",
        "register",
        "db",
        "--flavor=fakemysql",
        "--host=db.internal",
        "--user=ml",
        "--password=${env:TEST_DB_PASSWORD}",
    )
    ok("stack", "register", "prod", "-m", "db", "--set")
    return "prod"


def files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_secrets_are_never_stored_shown_or_recorded(secret_stack: str, home: Path) -> None:
    run = P.training(lr=0.5)
    with pytest.raises(Exception, match="boom"):
        P.failing()
    assert FakeMysqlFlavor.passwords_seen == [SECRET]  # resolved, and given to the flavor only

    # The run's stack snapshot: names, flavors and non-secret configuration only.
    snapshot = Client().get_run(run.name).stack
    assert snapshot["metadata_store"]["name"] == "db"
    assert snapshot["metadata_store"]["flavor"] == "fakemysql"
    assert snapshot["metadata_store"]["config"]["host"] == "db.internal"
    assert "password" not in snapshot["metadata_store"]["config"]
    assert SECRET not in json.dumps(snapshot)
    for view in (run, Client().get_run("failing-1")):
        assert SECRET not in json.dumps(view.environment) + json.dumps(view.config)
        for step in view.steps.values():
            assert SECRET not in step.logs
    assert "loading 4 rows" in run.steps["load"].logs  # logs were captured

    # What the CLI shows.
    described = ok("metadata-store", "describe", "db")
    assert "${env:TEST_DB_PASSWORD}" in described and SECRET not in described
    for args in (
        ("stack", "describe"),
        ("stack", "list"),
        ("metadata-store", "list"),
        ("run", "show", run.name),
        ("run", "logs", run.name),
        ("run", "list"),
    ):
        assert SECRET not in ok(*args), args

    # Nothing under the home holds it: config, lock, databases (and their journals), artifacts, logs.
    close_stacks()
    assert (home / "fakemysql-db.db").exists() and list((home / "artifacts").rglob("*"))
    assert files_containing(home, SECRET) == []
    config_text = (home / "config.yaml").read_text()
    assert "password: ${env:TEST_DB_PASSWORD}" in config_text


def test_file_references_are_resolved_and_not_stored(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeMysqlFlavor, "passwords_seen", [])
    secret_file = tmp_path / "db-password"
    secret_file.write_text(SECRET + "\n")
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    ok("metadata-store", "register", "db", "--flavor=fakemysql", f"--password=${{file:{secret_file}}}")
    ok("stack", "register", "prod", "-m", "db")
    run = P.training.with_options(stack="prod")()
    assert FakeMysqlFlavor.passwords_seen == [SECRET]  # trailing newline removed
    assert SECRET not in json.dumps(run.stack)
    close_stacks()
    assert files_containing(home, SECRET) == []


def test_a_reference_to_an_unset_variable_fails_when_the_stack_is_used(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPELEDGER_TEST_UNSET_PASSWORD", raising=False)
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    # Registering only stores the reference: the variable need not exist yet.
    ok(
        "metadata-store",
        "register",
        "db",
        "--flavor=fakemysql",
        "--password=${env:PIPELEDGER_TEST_UNSET_PASSWORD}",
    )
    ok("stack", "register", "prod", "-m", "db")
    assert "${env:PIPELEDGER_TEST_UNSET_PASSWORD}" in ok("stack", "describe", "prod") + ok(
        "metadata-store", "describe", "db"
    )

    expected = "refers to environment variable PIPELEDGER_TEST_UNSET_PASSWORD, which is not set"
    with pytest.raises(ConfigError, match=expected) as error:
        P.training.with_options(stack="prod")()
    assert "export PIPELEDGER_TEST_UNSET_PASSWORD=" in str(error.value)
    assert "metadata store 'db'" in str(error.value)
    with pytest.raises(ConfigError, match=expected):
        Client(stack="prod")

    ok("stack", "set", "prod")
    assert expected in refused("run", "list")

    monkeypatch.setenv("PIPELEDGER_TEST_UNSET_PASSWORD", SECRET)
    assert P.training().status == "completed"


def test_a_reference_to_a_missing_file_names_the_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "secret"
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    ok("metadata-store", "register", "db", "--flavor=fakemysql", f"--password=${{file:{missing}}}")
    ok("stack", "register", "prod", "-m", "db")
    with pytest.raises(ConfigError, match=f"cannot read password from file {missing}"):
        Client(stack="prod")


def test_a_relative_file_reference_is_refused(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``${file:...}`` paths must be absolute: a relative one would depend on the current directory."""
    (tmp_path / "secret").write_text(SECRET)
    monkeypatch.chdir(tmp_path)
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    line = refused("metadata-store", "register", "db", "--flavor=fakemysql", "--password=${file:secret}")
    assert "password refers to file 'secret', a relative path; give an absolute one" in line
    assert f"${{file:{tmp_path / 'secret'}}}" in line and SECRET not in line
    ok("metadata-store", "register", "db", "--flavor=fakemysql", "--password=${file:~/secret}")  # ~ is fine
    ok("stack", "register", "prod", "-m", "db")
    config = (home / "config.yaml").read_text()  # edited by hand: refused when used, too
    (home / "config.yaml").write_text(config.replace("${file:~/secret}", "${file:secret}"))
    with pytest.raises(ConfigError, match="a relative path; give an absolute one"):
        Client(stack="prod")


# ---------------------------------------------------------------------- named stacks


@pytest.fixture
def two_stacks(home: Path) -> None:
    for name in ("blue", "green"):
        ok("metadata-store", "register", name, "--flavor=sqlite")
        ok("artifact-store", "register", name, "--flavor=local")
        ok("stack", "register", name, "-m", name, "-a", name)


@pytest.mark.usefixtures("two_stacks")
def test_with_options_and_client_use_the_named_stack(home: Path) -> None:
    blue = P.training.with_options(stack="blue")(lr=0.1)
    assert blue.stack["name"] == "blue"
    assert Client(stack="blue").get_run(blue.name).steps["train"].outputs["model"].read()["w"] == 0.1
    assert blue.steps["train"].outputs["model"].uri.startswith(str(home / "artifacts-blue"))
    for other in ("green", "default", None):
        with pytest.raises(NotFoundError):
            Client(stack=other).get_run(blue.name)

    # The active stack is what a pipeline and Client() use without options.
    ok("stack", "set", "green")
    green = P.training(lr=0.2)
    assert green.stack["name"] == "green"
    assert [r.name for r in Client().list_runs()] == [green.name]
    assert [r.name for r in Client(stack="blue").list_runs()] == [blue.name]
    assert (home / "metadata-blue.db").exists() and (home / "metadata-green.db").exists()
    assert Client(stack="default").list_runs() == []

    with pytest.raises(ComponentNotFoundError, match="no stack named 'nope'; registered: default, blue, green"):
        P.training.with_options(stack="nope")()
    with pytest.raises(ComponentNotFoundError, match="no stack named 'nope'"):
        Client(stack="nope")


@pytest.mark.usefixtures("two_stacks")
def test_a_changed_component_is_used_from_then_on(tmp_path: Path) -> None:
    first = get_stack("blue")
    assert get_stack("blue") is first  # reused while unchanged
    ok("metadata-store", "update", "blue", f"--path={tmp_path / 'moved.db'}")
    run = P.training.with_options(stack="blue")()
    assert run.stack["metadata_store"]["config"]["path"] == str(tmp_path / "moved.db")
    assert (tmp_path / "moved.db").exists()
    assert get_stack("blue") is not first


def test_each_run_records_a_stack_snapshot(home: Path, tmp_path: Path) -> None:
    ok("orchestrator", "register", "runner", "--flavor=local", "--max-parallelism=2")
    ok("artifact-store", "register", "bucket", "--flavor=local", f"--path={tmp_path / 'bucket'}")
    ok("metadata-store", "register", "meta", "--flavor=sqlite", "--busy-timeout=5")
    ok("stack", "register", "full", "-o", "runner", "-a", "bucket", "-m", "meta", "--set")

    run = P.training()
    expected = {
        "name": "full",
        "orchestrator": {
            "name": "runner",
            "flavor": "local",
            "config": {"max_parallelism": 2, "workers": "processes", "on_failure": "continue"},
        },
        "artifact_store": {
            "name": "bucket",
            "flavor": "local",
            "config": {"path": str(tmp_path / "bucket"), "permissions": "private"},
        },
        "metadata_store": {
            "name": "meta",
            "flavor": "sqlite",
            "config": {"path": str(home / "metadata-meta.db"), "busy_timeout": 5.0, "permissions": "private"},
        },
    }
    assert run.stack == expected
    close_stacks()
    assert Client(stack="full").get_run(run.name).stack == expected  # as stored

    default_run = P.training.with_options(stack="default")()
    assert default_run.stack == {
        "name": "default",
        "orchestrator": {
            "name": "default",
            "flavor": "local",
            "config": {"max_parallelism": 1, "workers": "processes", "on_failure": "continue"},
        },
        "artifact_store": {
            "name": "default",
            "flavor": "local",
            "config": {"path": str(home / "artifacts"), "permissions": "private"},
        },
        "metadata_store": {
            "name": "default",
            "flavor": "sqlite",
            "config": {"path": str(home / "metadata.db"), "busy_timeout": 30.0, "permissions": "private"},
        },
    }


# ------------------------------------------------------------ migrating is the flavor's job


def test_migrate_goes_through_the_flavor(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    ok("metadata-store", "flavor", "register", "tests.flavors:MigratingFlavor")
    ok("metadata-store", "register", "mine", "--flavor=migrating", "--password=${env:DB_PASSWORD}")
    MigratingFlavor.migrations_seen.clear()
    assert "Schema upgraded from revision (empty) to custom-1." in ok("metadata-store", "migrate", "mine")
    assert MigratingFlavor.migrations_seen == [("mine", SECRET)]  # given the resolved secret

    # A flavor that does not override migrate() has nothing to migrate.
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    ok("metadata-store", "register", "plain", "--flavor=fakemysql", "--password=${env:DB_PASSWORD}")
    message = refused("metadata-store", "migrate", "plain")
    assert "metadata store 'plain' (flavor fakemysql) does not use pipeledger's SQL schema" in message
    assert "it has nothing to migrate" in message


def test_migrate_refuses_a_schema_newer_than_this_pipeledger(home: Path) -> None:
    ok("metadata-store", "register", "team", "--flavor=sqlite")
    StackManager().build_component(ComponentType.METADATA_STORE, "team").close()  # creates the schema
    path = home / "metadata-team.db"
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    connection.close()
    message = refused("metadata-store", "migrate", "team")
    assert "has schema revision 9999_future, newer than this pipeledger" in message
    assert "upgrade pipeledger instead" in message
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999_future",)]
    connection.close()


def test_stack_does_not_import_the_sql_implementation() -> None:
    """stack/ reaches stores only through their flavors (the registry names them by import
    path): no import of pipeledger.metadata_store.sql or .flavors, not even inside a function."""
    forbidden = ("pipeledger.metadata_store.sql", "pipeledger.metadata_store.flavors")
    found = []
    for path in sorted(Path(pipeledger.stack.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} {name}"
                for name in names
                if any(name == f or name.startswith(f + ".") for f in forbidden)
            ]
    assert found == []
