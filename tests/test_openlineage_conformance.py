"""OpenLineage events validated against OpenLineage's published JSON schemas (spec 2-0-2 and
the facet schemas, in ``../shared/openlineage-spec/``; see :mod:`tests.openlineage_spec`):
every event type pipeledger emits (START, COMPLETE, FAIL, ABORT; cached steps), runs with
hostile names, runs imported from ML Metadata, and runs recorded before the step's file and
error message were kept. Also what the facets say: ``sourceCodeLocation`` (a valid URI, the
repository, the file's path in it, no credential) and ``errorMessage`` (the exception's
message, the traceback apart).

The tests skip, saying why, only where the schemas' folder is absent."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from pipeledger import Client, DefinitionError, RunFailedError, RunView, Status, pipeline, step
from pipeledger.cli.main import cli
from pipeledger.lineage.openlineage import run_events as events_of
from pipeledger.lineage.openlineage import step_events
from pipeledger.lineage.source_location import file_page_url, file_uri, remote_repository
from pipeledger.models import RunRecord, StepRunRecord
from pipeledger.steps.signature import MAX_PIPELINE_NAME_LENGTH, check_name
from pipeledger.testing.helpers import finish, make_run, make_step
from tests import pipelines as P
from tests.openlineage_spec import SPEC_DIR, OpenLineageSpec, missing_reason
from tests.servers import skip_without_mlmd_wheel
from tests.test_bad_input import NASTY_NAMES

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")

TOKEN = "glpat-SECRET0123456789"
HOSTILE_OUTPUT = 'out "1" <&amp;> ü #?%20/'


@pytest.fixture(scope="module")
def spec() -> OpenLineageSpec:
    return OpenLineageSpec(SPEC_DIR)


def run_events(run: Any, spec: OpenLineageSpec, namespace: str = "pipeledger") -> list[dict[str, Any]]:
    """The run's events, each checked against the schemas (and JSON-serializable as it is)."""
    events = events_of(run, namespace)
    for event in events:
        assert json.loads(json.dumps(event)) == event
        spec.check(event)
    return events


def facet(events: list[dict[str, Any]], job: str, kind: str = "sourceCodeLocation") -> dict[str, Any]:
    """The one value of a job facet (``kind``) across the events of ``job``."""
    found = {json.dumps(e["job"]["facets"].get(kind), sort_keys=True) for e in events if e["job"]["name"] == job}
    assert len(found) == 1, found
    return json.loads(found.pop())


# --- the validator can fail --------------------------------------------------------------------


def sample_event() -> dict[str, Any]:
    """A FAIL event with every facet pipeledger writes, built from records."""
    moment = datetime(2024, 5, 17, 12, tzinfo=timezone.utc)
    run = RunRecord(
        id="1" * 32,
        pipeline_id="2" * 32,
        pipeline_name="p",
        name="p-1",
        number=1,
        status=Status.FAILED,
        start_time=moment,
        end_time=moment,
        environment={"git": {"root": "/repo", "remote": "git@github.com:acme/repo.git"}},
        git_sha="a" * 40,
    )
    step_run = StepRunRecord(
        id="3" * 32,
        run_id=run.id,
        name="s",
        status=Status.FAILED,
        start_time=moment,
        end_time=moment,
        config={"source_file": "/repo/src/flow.py"},
        error="Traceback (most recent call last):\nValueError: bad",
        error_message="bad",
    )
    return step_events(step_run, run, [])[-1]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e["job"]["facets"]["sourceCodeLocation"].update(url="file:///src dir/x.py"), "is not a 'uri'"),
        (lambda e: e["job"]["facets"]["sourceCodeLocation"].update(url="git@github.com:acme/repo.git"), "'uri'"),
        (lambda e: e["job"]["facets"]["sourceCodeLocation"].pop("url"), "'url' is a required property"),
        (lambda e: e["run"].update(runId="0123"), "is not a 'uuid'"),
        (lambda e: e["run"]["facets"]["parent"]["run"].update(runId="x"), "is not a 'uuid'"),
        (lambda e: e.update(eventTime="2024-05-17 12:00"), "is not a 'date-time'"),
        (lambda e: e.update(eventType="DONE"), "is not one of"),
        (lambda e: e.update(producer="not a uri"), "is not a 'uri'"),
        (
            lambda e: e["run"]["facets"]["errorMessage"].pop("programmingLanguage"),
            "'programmingLanguage' is",
        ),
        (lambda e: e["run"]["facets"]["errorMessage"].update(message=["bad"]), "is not of type 'string'"),
        (lambda e: e["run"]["facets"]["errorMessage"].pop("_producer"), "'_producer' is a required property"),
        (
            lambda e: e["run"]["facets"]["errorMessage"].update(
                _schemaURL="https://openlineage.io/spec/facets/9-9-9/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
            ),
            "_schemaURL",
        ),
        (lambda e: e["run"]["facets"]["parent"].pop("job"), "'job' is a required property"),
    ],
)
def test_the_validator_refuses_what_the_schemas_forbid(spec: OpenLineageSpec, change: Any, problem: str) -> None:
    """Each check can fail: formats (uri, uuid, date-time) are checked, facets against their own
    schemas, and a facet must name the schema it follows."""
    event = sample_event()
    assert spec.problems(event) == []

    broken = copy.deepcopy(event)
    change(broken)

    found = spec.problems(broken)
    assert any(problem in p for p in found), found


def test_the_schemas_are_read_from_the_folder_and_nothing_is_fetched(spec: OpenLineageSpec) -> None:
    assert {("job", "sourceCodeLocation"), ("run", "errorMessage"), ("run", "parent")} <= set(spec.facets)
    assert all(schema_id.startswith("https://openlineage.io/spec/") for schema_id in spec.schemas)
    unknown = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "https://example.com/x.json"}
    from jsonschema import Draft202012Validator
    from referencing.exceptions import Unresolvable

    with pytest.raises(Unresolvable):  # a reference outside the registry is never fetched
        Draft202012Validator(unknown, registry=spec.registry).validate({})


# --- every event type of pipelines that ran ----------------------------------------------------


@step
def ingest(n: int = 5) -> Annotated[list, "raw"]:
    return list(range(n))


@step
def clean(raw: list) -> Annotated[list, "clean"]:
    return [r for r in raw if r % 2 == 0]


@step
def fit(clean: list, lr: float = 0.1) -> Annotated[dict, "model"]:
    return {"w": lr * sum(clean)}


@pipeline
def experiment(lr: float = 0.1):
    fit(clean(ingest()), lr=lr)


class TableError(Exception):
    """An error whose message spans lines."""


@step
def reject(raw: list) -> Annotated[list, "kept"]:
    error = TableError("3 rows rejected:\n  row 1: 'x' is not a number\n  row 7: empty")
    if sys.version_info >= (3, 11):  # notes are printed last in the traceback
        error.add_note("hint: clean the input first")
    raise error


@step
def silent(raw: list) -> int:
    raise KeyError()


@pipeline
def rejecting():
    rows = ingest()
    reject(rows)
    silent(rows)


def test_start_complete_fail_abort_and_cached_events_are_valid(spec: OpenLineageSpec) -> None:
    seen: set[str] = set()
    completed = run_events(P.training(), spec)
    seen |= {e["eventType"] for e in completed}

    with pytest.raises(RunFailedError) as failed:
        P.failing()
    failing = run_events(Client().get_run(failed.value.run_name), spec)
    seen |= {e["eventType"] for e in failing}

    experiment(lr=0.1)
    second = experiment(lr=0.2)
    assert second.steps["clean"].status is Status.CACHED
    cached = run_events(second, spec)
    clean_events = [e for e in cached if e["job"]["name"] == "experiment.clean"]
    assert [e["eventType"] for e in clean_events] == ["START", "COMPLETE"]
    assert clean_events[-1]["run"]["facets"]["pipeledger"]["status"] == "cached"

    store = Client().store
    recorded = make_run(store, "recorded")
    crashed = make_step(store, recorded, "crashed")
    finish(store, crashed, status=Status.CRASHED)
    make_step(store, recorded, "running")
    seen |= {e["eventType"] for e in run_events(RunView(store.get_run(recorded.id), store), spec)}

    assert seen == {"START", "COMPLETE", "FAIL", "ABORT"}


def test_error_message_is_the_exceptions_message_and_the_traceback_is_the_stack_trace(
    spec: OpenLineageSpec,
) -> None:
    with pytest.raises(RunFailedError) as failed:
        rejecting()
    run = Client().get_run(failed.value.run_name)

    events = run_events(run, spec)

    errors = {e["job"]["name"]: e["run"]["facets"]["errorMessage"] for e in events if e["eventType"] == "FAIL"}
    assert set(errors) == {"rejecting.reject", "rejecting.silent"}
    reject_error = errors["rejecting.reject"]
    assert reject_error["message"] == "3 rows rejected:\n  row 1: 'x' is not a number\n  row 7: empty"
    assert reject_error["programmingLanguage"] == "python"
    trace = reject_error["stackTrace"]
    assert trace.startswith("Traceback (most recent call last):") and "in reject\n" in trace
    if sys.version_info >= (3, 11):  # the note: in the traceback, not in the message
        assert trace.endswith("TableError: " + reject_error["message"] + "\nhint: clean the input first")
    assert trace == run.steps["reject"].error
    assert run.steps["reject"].error_message == reject_error["message"]
    assert errors["rejecting.silent"]["message"] == "KeyError"  # an empty message: the exception's type


# --- hostile names ------------------------------------------------------------------------------


@step
def emit(value: str = "v") -> Annotated[str, HOSTILE_OUTPUT]:
    return value


def allowed(name: str) -> bool:
    try:
        check_name("name", name)
    except DefinitionError:
        return False
    return len(name) <= MAX_PIPELINE_NAME_LENGTH


def test_runs_with_hostile_names_give_valid_events(spec: OpenLineageSpec) -> None:
    """Pipeline names, step ids, run names and output names from the bad-input corpus."""
    names = list(dict.fromkeys([*(n for n in NASTY_NAMES if allowed(n)), "ü" * MAX_PIPELINE_NAME_LENGTH]))
    assert len(names) > 20
    for i, name in enumerate(names):

        def body(step_id: str = name) -> None:
            emit(id=step_id)

        run_name = f"hostile-{i}-{name}" if "{" not in name and "}" not in name else f"hostile-{i}"
        hostile = pipeline(name=name)(body).with_options(run_name=run_name[:200], enable_cache=False)

        events = run_events(hostile(), spec)

        assert [(e["job"]["name"], e["eventType"]) for e in events] == [
            (f"{name}.{name}", "START"),
            (f"{name}.{name}", "COMPLETE"),
        ]
        assert events[0]["run"]["facets"]["parent"]["job"]["name"] == name
        assert events[-1]["run"]["facets"]["pipeledger"]["runName"] == run_name[:200]
        assert len(events[-1]["outputs"]) == 1


# --- sourceCodeLocation from a real repository ---------------------------------------------------

FLOW = """
from typing import Annotated

from pipeledger import pipeline, step


@step
def produce(n: int = 3) -> Annotated[list, "rows"]:
    return list(range(n))


@pipeline
def located():
    produce()
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def flow_file(tmp_path: Path) -> Iterator[Path]:
    """A pipeline module at ``repo/src dir/flöw #1.py`` (not yet a git repository)."""
    folder = tmp_path / "repo" / "src dir"
    folder.mkdir(parents=True)
    path = folder / "flöw #1.py"
    path.write_text(FLOW)
    yield path
    sys.modules.pop(f"located_{tmp_path.name}", None)


def run_flow(path: Path, module: str) -> RunView:
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded.located()  # type: ignore[no-any-return]


def commit(repo: Path, remote: str | None) -> str:
    git(repo, "init", "-q")
    if remote is not None:
        git(repo, "remote", "add", "origin", remote)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flow")
    return git(repo, "rev-parse", "HEAD")


IN_REPO = "src dir/flöw #1.py"
ENCODED = quote(IN_REPO)  # src%20dir/fl%C3%B6w%20%231.py


@pytest.mark.parametrize(
    ("remote", "repo_url", "page"),
    [
        ("git@github.com:acme/repo.git", "git@github.com:acme/repo.git", "https://github.com/acme/repo/blob/{sha}/"),
        (
            f"https://oauth2:{TOKEN}@gitlab.com/acme/group/repo.git",
            "https://gitlab.com/acme/group/repo.git",
            "https://gitlab.com/acme/group/repo/-/blob/{sha}/",
        ),
        (
            "ssh://git@bitbucket.org/acme/repo",
            "ssh://bitbucket.org/acme/repo",
            "https://bitbucket.org/acme/repo/src/{sha}/",
        ),
        ("git@git.example.com:acme/repo.git", "git@git.example.com:acme/repo.git", None),
        (None, None, None),
    ],
    ids=["github-scp", "gitlab-token", "bitbucket-ssh", "unknown-forge", "no-remote"],
)
def test_source_code_location_in_a_repository(
    spec: OpenLineageSpec, flow_file: Path, tmp_path: Path, remote: str | None, repo_url: str | None, page: str | None
) -> None:
    repo = flow_file.parent.parent
    sha = commit(repo, remote)

    run = run_flow(flow_file, f"located_{tmp_path.name}")
    events = run_events(run, spec)

    location = facet(events, "located.produce")
    assert location["type"] == "git"
    assert location["path"] == IN_REPO  # the step's file in the repository, not its entry point
    assert location["version"] == sha
    assert location.get("repoUrl") == repo_url
    if page is not None:  # the file's page at the commit
        assert location["url"] == page.format(sha=sha) + ENCODED
    else:  # the file on the machine that ran it
        assert location["url"] == flow_file.resolve().as_uri()
        assert "%20" in location["url"] and " " not in location["url"]
    assert TOKEN not in json.dumps(events) + json.dumps(run.environment)


def test_source_code_location_outside_a_repository(spec: OpenLineageSpec, flow_file: Path, tmp_path: Path) -> None:
    run = run_flow(flow_file, f"located_{tmp_path.name}")
    events = run_events(run, spec)

    assert run.git_sha is None
    assert facet(events, "located.produce") == {
        "_producer": events[0]["producer"],
        "_schemaURL": events[0]["job"]["facets"]["sourceCodeLocation"]["_schemaURL"],
        "type": "file",
        "url": flow_file.resolve().as_uri(),
    }


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("git@github.com:acme/repo.git", ("github.com", "acme/repo")),
        ("github.com:acme/repo", ("github.com", "acme/repo")),
        ("ssh://git@GitHub.com:22/acme/repo.git/", ("github.com", "acme/repo")),
        ("https://user:pw@gitlab.com/a/b/c.git", ("gitlab.com", "a/b/c")),
        ("git://bitbucket.org/acme/repo", ("bitbucket.org", "acme/repo")),
        ("/srv/git/repo.git", None),
        ("../repo", None),
        ("file:///srv/git/repo.git", None),
        ("C:\\git\\repo", None),
        ("C:/git/repo", None),
        ("https://github.com/", None),
        ("https://[::1", None),
    ],
)
def test_the_repository_of_a_remote(remote: str, expected: tuple[str, str] | None) -> None:
    assert remote_repository(remote) == expected


def test_locations_are_uris_whatever_the_path() -> None:
    assert file_uri("/a b/ü#?%.py") == "file:///a%20b/%C3%BC%23%3F%25.py"
    assert file_uri("C:\\a b\\x.py") == "file:///C:/a%20b/x.py"
    assert file_uri("relative/x.py") is None
    assert file_uri("/bad\udcff.py") == "file:///bad%FF.py"  # an undecodable byte, as it is on disk
    assert file_page_url("git@github.com:a/b.git", "c" * 40, "d e/f#.py") == (
        "https://github.com/a/b/blob/" + "c" * 40 + "/d%20e/f%23.py"
    )
    assert file_page_url("git@example.com:a/b.git", "c" * 40, "x.py") is None


# --- records made before the step's file and message were kept, and imports ------------------


def recorded_run(**environment: Any) -> RunRecord:
    moment = datetime(2024, 5, 17, 12, tzinfo=timezone.utc)
    return RunRecord(
        id="1" * 32,
        pipeline_id="2" * 32,
        pipeline_name="p",
        name="p-1",
        number=1,
        status=Status.FAILED,
        start_time=moment,
        end_time=moment + timedelta(seconds=1),
        config={"pipeline": {"entrypoint": "flows.train.p", "source_file": "/work/repo/flows/train.py"}},
        environment={"git": environment} if environment else {},
        git_sha="b" * 40 if environment else None,
    )


def recorded_step(entrypoint: str, error: str | None = None) -> StepRunRecord:
    moment = datetime(2024, 5, 17, 12, tzinfo=timezone.utc)
    return StepRunRecord(
        id="3" * 32,
        run_id="1" * 32,
        name="s",
        status=Status.FAILED if error else Status.COMPLETED,
        start_time=moment,
        end_time=moment,
        entrypoint=entrypoint,
        error=error,
    )


def test_older_records_export_what_they_know(spec: OpenLineageSpec) -> None:
    """No step file recorded: the pipeline's file when the step is in the pipeline's module, else
    no path; no error message recorded: the traceback's last line."""
    run = recorded_run(root="/work/repo", remote="https://github.com/acme/repo.git")
    trace = "Traceback (most recent call last):\n  File 'x'\nValueError: bad\nnote: a note"

    same_module = step_events(recorded_step("flows.train.fit", trace), run, [])
    other_module = step_events(recorded_step("flows.steps.fit"), run, [])
    no_git = step_events(recorded_step("flows.train.fit"), recorded_run(), [])

    for event in same_module + other_module + no_git:
        spec.check(event)
    assert same_module[-1]["job"]["facets"]["sourceCodeLocation"]["path"] == "flows/train.py"
    assert same_module[-1]["job"]["facets"]["sourceCodeLocation"]["url"] == (
        "https://github.com/acme/repo/blob/" + "b" * 40 + "/flows/train.py"
    )
    assert same_module[-1]["run"]["facets"]["errorMessage"]["message"] == "note: a note"
    location = other_module[-1]["job"]["facets"]["sourceCodeLocation"]
    assert "path" not in location and location["url"] == "file:///work/repo"
    assert no_git[-1]["job"]["facets"]["sourceCodeLocation"] == {
        **{k: location[k] for k in ("_producer", "_schemaURL")},
        "type": "file",
        "url": "file:///work/repo/flows/train.py",
    }


def test_runs_imported_from_ml_metadata_give_valid_events(spec: OpenLineageSpec, tmp_path: Path) -> None:
    skip_without_mlmd_wheel()  # ml-metadata has no wheel for Python >= 3.12
    from tests.test_import_mlmd import sqlite_config, write_tfx_history

    path = tmp_path / "metadata.sqlite"
    write_tfx_history(sqlite_config(path))
    imported = CliRunner().invoke(cli, ["import", "mlmd", "--sqlite", str(path)])
    assert imported.exit_code == 0, imported.output

    runs = Client().list_runs(pipeline="taxi")
    assert len(runs) == 2
    types: set[str] = set()
    for run in runs:
        events = run_events(run, spec)
        assert len(events) >= 2 * len(run.steps)
        types |= {e["eventType"] for e in events}
        steps = {str(uuid.UUID(hex=s.id)): s for s in run.steps.values()}
        for event in events:
            if event["eventType"] == "FAIL":
                error_message = steps[event["run"]["runId"]].error_message
                assert error_message and event["run"]["facets"]["errorMessage"]["message"] == error_message
    assert {"START", "COMPLETE", "FAIL"} <= types
