"""``gc`` and ``run delete`` remove only files this metadata store wrote into its artifact store.

Imported and external artifacts lose their records, never their files; a record pointing
anywhere else (outside the root, through ``..`` or a symbolic link, into another store's
files) removes nothing; metadata stores sharing one artifact store never collect each other's
files as orphans; a ``gc`` running while a step writes its outputs leaves them alone; and
every run and step run gets paths of its own, however alike their names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from pipeledger import Client, RunFailedError, Status, pipeline, step
from pipeledger.cli.main import cli
from pipeledger.maintenance import find_orphans
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.schema import artifacts, step_runs
from pipeledger.models import ArtifactCreate, RunCreate, StepRunCreate, utcnow
from pipeledger.stack.registry import close_stacks, get_stack
from tests import pipelines as P
from tests.servers import enabled_backends, scratch_database, server_config
from tests.test_concurrency import REPO, python_env, use_backend
from tests.test_crash import wait_for
from tests.test_deletion import age, artifacts_root, check_passes, invoke, set_start, sql_store


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with use_backend(request.param, monkeypatch):
        yield request.param


def foreign_tree(path: Path) -> Path:
    """A directory with a file, standing for data pipeledger did not write."""
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"not ours")
    return path


def record_imported_run(name: str, output_uri: str, input_uri: str, logs_uri: str | None = None) -> None:
    """A run recorded the way ``pipeledger import mlmd`` records one: artifacts at their original
    URIs with no artifact store, an input registered as external data."""
    store = Client().store
    run = store.create_run(RunCreate(pipeline_name="taxi", name=name))
    external = store.register_artifact(
        ArtifactCreate("", input_uri, "Examples", "mlmd:Examples", "mlmd:Examples", "", "", 0), at=utcnow()
    )
    started = store.start_step(StepRunCreate(run_id=run.id, name="Trainer", inputs={"examples": external.id}))
    output = ArtifactCreate("model", output_uri, "Model", "mlmd:Model", "mlmd:Model", "", "", 0)
    store.finish_step(started.id, Status.COMPLETED, end_time=utcnow(), outputs=[output], logs_uri=logs_uri)
    store.finish_run(run.id, Status.COMPLETED, end_time=utcnow())


# --- item 2: nothing outside the store's own files ----------------------------------------------


def test_imported_and_external_files_are_never_deleted(backend: str, tmp_path: Path) -> None:
    model = foreign_tree(tmp_path / "tfx" / "Trainer" / "model" / "7")
    examples = foreign_tree(tmp_path / "tfx" / "CsvExampleGen" / "examples" / "3")
    logs = tmp_path / "tfx" / "Trainer" / "logs.txt"
    logs.write_text("tfx's own log")
    record_imported_run("taxi-1", str(model), str(examples), str(logs))
    record_imported_run("taxi-2", str(model.parent / "8"), str(examples))
    foreign_tree(model.parent / "8")

    code, out, err = invoke("run", "delete", "taxi-1", "--yes")
    assert (code, err) == (0, ""), out + err
    assert "Deleted run taxi-1 and 1 artifact." in out
    assert f"kept the files at {model}: not written by this metadata store" in out
    assert f"kept the files at {logs}" in out
    assert model.exists() and examples.exists() and logs.exists()
    assert [r.name for r in Client().list_runs()] == ["taxi-2"]

    set_start(["taxi-2"], days_ago=40)
    code, out, err = invoke("gc", "--older-than", "30d", "--dry-run")
    assert (code, err) == (0, ""), out + err
    assert "file of a deleted run" not in out and f"kept the files at {model.parent / '8'}" in out
    code, out, err = invoke("gc", "--older-than", "30d", "--yes")
    assert (code, err) == (0, ""), out + err
    assert (model.parent / "8").exists() and examples.exists()
    assert Client().list_runs() == []
    code, out, err = invoke("metadata-store", "check")  # not --deep: the imported records have no hash
    assert (code, err) == (0, ""), out + err


def test_a_hostile_record_cannot_make_gc_delete_anything_else(backend: str, tmp_path: Path) -> None:
    """Rows rewritten by anyone who can write the database point outside the store, at its
    root, through ``..`` or a symbolic link, into another store's files: nothing is removed."""
    victims = [foreign_tree(tmp_path / f"victim-{i}") for i in range(6)]
    root = artifacts_root()
    runs = [P.training(lr=0.1 * (i + 1)) for i in range(3)]
    owned = Path(runs[0].steps["train"].outputs["model"].uri)
    inside = owned.parent  # the output directory, inside this store's files
    (inside / "link").symlink_to(victims[2])
    other_store = foreign_tree(root / "stores" / ("f" * 32) / "p" / f"r-{'1' * 32}" / f"s-{'2' * 32}" / "o" / "x")
    hostile = {
        runs[0].steps["train"].outputs["model"].id: str(victims[0]),
        runs[0].steps["train"].outputs["accuracy"].id: f"{root}/stores/../../../{victims[1].name}",
        runs[1].steps["train"].outputs["model"].id: str(inside / "link"),
        runs[1].steps["train"].outputs["accuracy"].id: str(root),
        runs[2].steps["train"].outputs["model"].id: str(other_store),
        runs[2].steps["train"].outputs["accuracy"].id: f"file://{victims[3]}",
    }
    store = sql_store()
    with store.db.transaction() as conn:
        for artifact_id, uri in hostile.items():
            conn.execute(update(artifacts).where(artifacts.c.id == artifact_id).values(uri=uri))
        conn.execute(update(step_runs).where(step_runs.c.run_id == runs[0].id).values(logs_uri=str(victims[4])))
        conn.execute(update(step_runs).where(step_runs.c.run_id == runs[1].id).values(logs_uri=str(root)))
    age(root)

    code, out, err = invoke("run", "delete", runs[0].name, "--yes")
    assert (code, err) == (0, ""), out + err
    set_start([runs[1].name, runs[2].name], days_ago=40)
    code, out, err = invoke("gc", "--older-than", "30d", "--yes")
    assert (code, err) == (0, ""), out + err
    assert all(v.exists() and (v / "saved_model.pb").read_bytes() == b"not ours" for v in victims)
    assert other_store.exists() and root.exists() and (inside / "link").is_symlink()
    assert Client().list_runs() == []


# --- item 3: stores sharing one artifact store --------------------------------------------------


def test_stores_sharing_an_artifact_store_keep_each_others_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default stack (SQLite), a second SQLite store and (when enabled) each server store,
    all on the default artifact store as the docs register them: ``gc`` on any of them keeps
    the others' files."""
    runner = CliRunner()
    stacks = ["default", "second"]
    result = runner.invoke(cli, ["metadata-store", "register", "second", "--flavor=sqlite"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["stack", "register", "second", "-m", "second"]).exit_code == 0
    with ExitStackOfDatabases(monkeypatch) as servers:
        for backend, values in servers:
            options = [f"--{k}={v}" for k, v in values.items()]
            result = runner.invoke(cli, ["metadata-store", "register", backend, f"--flavor={backend}", *options])
            assert result.exit_code == 0, result.output
            assert runner.invoke(cli, ["stack", "register", backend, "-m", backend]).exit_code == 0
            stacks.append(backend)
        uris: dict[str, list[str]] = {}
        for name in stacks:
            run = P.training.with_options(stack=name)(lr=0.5)
            uris[name] = [a.uri for s in run.steps.values() for a in s.outputs.values()]
            assert all(Path(u).exists() for u in uris[name])
        age(artifacts_root())
        for name in stacks:
            result = runner.invoke(cli, ["stack", "set", name])
            assert result.exit_code == 0, result.output
            code, out, err = invoke("gc", "--yes")
            assert (code, err) == (0, ""), out + err
            assert "Nothing to collect." in out
        for name in stacks:
            assert all(Path(u).exists() for u in uris[name])
            (run,) = Client(stack=name).list_runs()
            assert run.steps["train"].outputs["model"].read() == {"w": 0.5, "n": 4}
        assert len({get_stack(n).metadata_store.store_id() for n in stacks}) == len(stacks)


def test_a_store_whose_id_was_changed_to_anothers_touches_none_of_its_files(home: Path) -> None:
    """Anyone who can write a database may set its store id to another store's (the directory
    names show them): that store's ``.owner.json`` holds a token they cannot see, so ``gc`` and
    ``run delete`` leave its files alone and runs refuse to write there."""
    runner = CliRunner()
    assert runner.invoke(cli, ["metadata-store", "register", "second", "--flavor=sqlite"]).exit_code == 0
    assert runner.invoke(cli, ["stack", "register", "second", "-m", "second"]).exit_code == 0
    victim = P.training(lr=0.5)
    victim_files = [Path(a.uri) for s in victim.steps.values() for a in s.outputs.values()]
    identity = sql_store().store_identity()
    assert identity is not None
    owner_file = artifacts_root() / "stores" / identity.id / ".owner.json"
    assert json.loads(owner_file.read_text())["token"] == identity.token
    P.training.with_options(stack="second")(lr=0.7)
    from pipeledger.metadata_store.sql.schema import store_identity  # revision 0004

    second = get_stack("second").metadata_store
    assert isinstance(second, SqlMetadataStore)
    with second.db.transaction() as conn:
        conn.execute(update(store_identity).values(id=identity.id))  # its own token stays
    close_stacks()
    age(artifacts_root())

    assert runner.invoke(cli, ["stack", "set", "second"]).exit_code == 0
    code, out, err = invoke("gc", "--yes")
    assert code == 0, out + err
    assert "is not this metadata store's (its .owner.json is missing or holds another token)" in err
    assert "Nothing to collect." in out and all(p.exists() for p in victim_files)
    with pytest.raises(RunFailedError, match="names another metadata store as the owner"):
        P.training(lr=0.9)
    (failed, *_) = Client().list_runs()
    assert failed.status is Status.FAILED and all(s.status is not Status.RUNNING for s in failed.steps.values())
    assert all(p.exists() for p in victim_files)
    assert Client(stack="default").get_run(victim.name).steps["train"].outputs["model"].read() == {"w": 0.5, "n": 4}


class ExitStackOfDatabases:
    """Scratch databases on the enabled servers, as (flavor, registration options)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from contextlib import ExitStack

        self.stack = ExitStack()
        self.monkeypatch = monkeypatch

    def __enter__(self) -> list[tuple[str, dict[str, object]]]:
        found = []
        for backend in enabled_backends():
            if backend == "sqlite":
                continue
            url = self.stack.enter_context(scratch_database(backend))
            if url.password:
                self.monkeypatch.setenv("PIPELEDGER_TEST_DB_PASSWORD", url.password)
            found.append((backend, server_config(backend, url)))
        return found

    def __exit__(self, *exc: object) -> None:
        close_stacks()
        self.stack.close()


# --- item 4: a gc beside a step writing its outputs ---------------------------------------------

WORKER = """
import sys
from tests.test_gc_safety import two_outputs
two_outputs(release=sys.argv[1], saving=sys.argv[2])
"""


def test_gc_beside_a_step_keeps_the_output_it_just_wrote(backend: str, tmp_path: Path) -> None:
    """The first output is in place, unrecorded, while the second one's materializer runs: a ``gc``
    then (even with the first output's files aged past the grace period) leaves it alone."""
    release, saving = tmp_path / "release", tmp_path / "saving"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(release), str(saving)],
        cwd=REPO,
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: saving.exists() or proc.poll() is not None, "the second output to be saving")
        assert proc.poll() is None, proc.communicate()[1]
        (first,) = [p for d in artifacts_root().rglob("first") for p in d.iterdir()]  # in place, unrecorded
        age(first)
        code, out, err = invoke("gc", "--yes")
        assert (code, err) == (0, ""), out + err
        assert "Nothing to collect." in out and first.exists()
        assert find_orphans(sql_store(), get_stack().artifact_store, grace=0).paths == []  # no grace needed
        release.touch()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    (run,) = Client().list_runs(pipeline="two outputs")
    assert run.status is Status.COMPLETED
    assert run.steps["split"].outputs["first"].read() == [1, 2]
    assert run.steps["split"].outputs["second"].read().value == 3
    check_passes()


def test_dry_run_lists_the_leftovers_of_a_run_it_would_mark_crashed(home: Path) -> None:
    """A run whose process died (old heartbeat, still recorded running): its half-written output
    is an orphan for the dry run too, not only once the real ``gc`` has marked it crashed."""
    store = sql_store()
    run = store.create_run(RunCreate(pipeline_name="died", name="died-1"))
    started = store.start_step(StepRunCreate(run_id=run.id, name="write"))
    identity, artifact_store = store.store_identity(), get_stack().artifact_store
    assert identity is not None
    artifact_store.claim(identity, store.describe())  # as the step would have before writing
    step_dir = artifact_store.step_dir(identity.id, "died", run.name, run.id, "write", started.id)
    leftover = Path(step_dir) / f".tmp-{'a' * 32}"
    leftover.mkdir(parents=True)
    (leftover / "part.bin").write_bytes(b"half")
    age(leftover)
    set_start([run.name], days_ago=1)  # heartbeat a day old

    code, out, err = invoke("gc", "--dry-run")
    assert (code, err) == (0, ""), out + err
    assert f"orphaned: {leftover}" in out and leftover.exists()
    assert store.get_run(run.id).status is Status.RUNNING
    code, out, err = invoke("gc", "--yes")
    assert (code, err) == (0, ""), out + err
    assert f"orphaned: {leftover}" in out and not leftover.exists()
    assert store.get_run(run.id).status is Status.CRASHED


# --- item 7: one path per recorded object --------------------------------------------------------


@step(name="load data")
def load_spaced() -> int:
    print("from `load data`")
    return 1


@step(name="load_data")
def load_underscored() -> int:
    print("from `load_data`")
    return 2


@pipeline(name="alike")
def alike() -> None:
    load_spaced()
    load_underscored()


def test_alike_names_get_paths_of_their_own(home: Path) -> None:
    prefix = "r" * 100
    first = alike.with_options(run_name=prefix + "-first", enable_cache=False)()
    second = alike.with_options(run_name=prefix + "-second", enable_cache=False)()
    client = Client()
    store = client.store
    logs = {
        (run.name, s.name): s.logs_uri for run in (first, second) for s in store.list_step_runs(run.id) if s.logs_uri
    }
    assert len(logs) == 4 and len(set(logs.values())) == 4
    for (run_name, step_name), uri in logs.items():
        assert Path(uri).read_text() == f"from `{step_name}`\n"
        code, out, err = invoke_logs(run_name, step_name)
        assert (code, err) == (0, ""), out + err
        assert out.strip() == f"from `{step_name}`"
    outputs = [a.uri for run in (first, second) for s in run.steps.values() for a in s.outputs.values()]
    assert len(set(Path(u).parent.parent for u in outputs)) == 4  # one directory per step run

    code, out, err = invoke("run", "delete", first.name, "--yes")
    assert (code, err) == (0, ""), out + err
    run_dir = Path(logs[(first.name, "load data")]).parent.parent
    assert run_dir.name.endswith(first.id) and not run_dir.exists()  # emptied, then removed
    assert run_dir.parent.exists()  # the pipeline's directory stays
    assert all(Path(u).exists() for (run_name, _), u in logs.items() if run_name == second.name)
    assert client.get_run(second.name).steps["load data"].logs == "from `load data`\n"
    assert client.get_run(second.name).steps["load_data"].output.read() == 2


def invoke_logs(run: str, step_name: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["run", "logs", run, step_name])
    return result.exit_code, result.stdout, result.stderr


# The pipeline of the gc-beside-a-step test (a module-level step: the worker imports it).


class Slow:
    """A value whose materializer waits for the file ``release`` before it finishes saving."""

    def __init__(self, value: int, release: str, saving: str) -> None:
        self.value, self.release, self.saving = value, release, saving


def _register_slow_materializer() -> None:
    import json
    from typing import Any

    from pipeledger.artifacts.materializers import Materializer, register_materializer
    from pipeledger.models import JSON

    class SlowMaterializer(Materializer):
        handled_types = (Slow,)

        def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
            Path(value.saving).touch()
            deadline = time.monotonic() + 120
            while not Path(value.release).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            with fs.open(f"{path}/value.json", "w") as f:
                json.dump(value.value, f)
            return {}

        def load(self, fs: Any, path: str, data_type: type | None) -> Any:
            with fs.open(f"{path}/value.json") as f:
                return Slow(json.load(f), "", "")

    register_materializer(SlowMaterializer())


_register_slow_materializer()


@step
def split(release: str = "", saving: str = "") -> tuple[Annotated[list, "first"], Annotated[Slow, "second"]]:
    return [1, 2], Slow(3, release, saving)


@pipeline(name="two outputs")
def two_outputs(release: str = "", saving: str = "") -> None:
    split(release=release, saving=saving)


@pytest.mark.parametrize("name", ["owner.json", ".owner.json", "stores", ".tmp-x"])
def test_no_pipeline_name_collides_with_the_stores_own_files(name: str) -> None:
    """A pipeline's directory sits beside the store's owner file: no name can take its place
    (path segments never start with a dot), and gc still sees the store as its own."""

    @step
    def emit() -> int:
        return 1

    @pipeline(name=name)
    def named() -> None:
        emit()

    named()
    named()  # the owner file was claimed by the first run and is read again
    [run] = Client().get_pipeline(name).runs[:1]
    assert run.steps["emit"].output.read() == 1
    code, out, err = invoke("gc", "--keep-last", "1", "--yes")
    assert (code, err) == (0, ""), out + err
    assert "is not this metadata store's" not in out
