"""One set of limits for every name and value, identical on every backend (pipeledger.limits).

Each bad name or value is refused with the same ``DefinitionError`` on SQLite, MariaDB and
PostgreSQL, before it reaches the database: at definition time (output and argument names,
tags), when logged (``log_metadata``), or before a step's results are recorded (an
artifact's metadata). Values right at the limits are recorded and read back on every backend.
And whatever fails while a step is being recorded leaves the step ``failed`` (or, if the
store refuses even that, ``running`` under a ``running`` run for crash detection): never a
finished run with a step left ``running``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner

from pipeledger import (
    Client,
    DefinitionError,
    MetadataStoreError,
    RunFailedError,
    Status,
    log_metadata,
    pipeline,
    step,
)
from pipeledger.artifacts.materializers import Materializer, register_materializer
from pipeledger.cli.main import cli
from pipeledger.limits import MAX_NAME_LENGTH, MAX_RECORD_BYTES, MAX_VALUE_BYTES, encoded_size, storable_text
from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.models import JSON, utcnow
from tests.servers import enabled_backends
from tests.test_concurrency import use_backend


@pytest.fixture(params=enabled_backends())
def backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with use_backend(request.param, monkeypatch):
        yield request.param


def sql_store() -> SqlMetadataStore:
    store = Client().store
    assert isinstance(store, SqlMetadataStore)
    return store


def step_states() -> list[tuple[str, Status, Status]]:
    """(step name, step status, run status) of every recorded step."""
    return [(s.name, s.status, r.status) for r in Client().list_runs() for s in r.steps.values()]


def check_is_clean() -> None:
    result = CliRunner().invoke(cli, ["metadata-store", "check"])
    assert result.exit_code == 0, result.output


# --- names and values: the same refusal everywhere ------------------------------------------


BAD_NAMES = ["o" * (MAX_NAME_LENGTH + 1), "nul\x00", "trailing ", "", "\ud800"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_output_names_are_refused_when_the_step_is_defined(name: str) -> None:
    def one() -> Any:
        return 1

    for returns in (Annotated[int, name], tuple[Annotated[int, "fine"], Annotated[int, name]]):
        one.__annotations__ = {"return": returns}  # (annotations are strings in this module)
        with pytest.raises(DefinitionError, match=r"^step 'one': output name"):
            step(one)


def test_bad_tags_are_refused_when_the_options_are_set() -> None:
    @pipeline(name="tagged")
    def tagged() -> None:
        pass

    for tag in ["nul\x00", "x" * (MAX_NAME_LENGTH + 1), " padded"]:
        with pytest.raises(DefinitionError, match="tag"):
            tagged.with_options(tags=[tag])


KEYS = {"plain": "k", "nul": "a\x00b", "long": "k" * 300, "space": "k "}


@step
def logs(key: str = "plain", size: int = 1, count: int = 1) -> int:
    """Logs ``count`` values of ``size`` encoded bytes (backslashes: the worst case for SQL escaping)
    under the key ``KEYS[key]`` (numbered when ``count > 1``)."""
    for i in range(count):
        value = "\\" * ((size - 2) // 2)  # JSON doubles each backslash, plus the quotes
        log_metadata(**{f"{KEYS[key]}{i}" if count > 1 else KEYS[key]: value})
    return 1


@pipeline(name="logs metadata")
def logs_metadata(key: str = "plain", size: int = 1, count: int = 1) -> None:
    logs(key=key, size=size, count=count)


BAD_METADATA = [
    ({"key": "nul"}, "log_metadata: key 'a\\x00b' contains control characters"),
    ({"key": "long"}, "log_metadata: key is 300 characters long; the limit is 255"),
    ({"key": "space"}, "log_metadata: key 'k ' starts or ends with whitespace"),
    ({"size": 20_000_000}, "log_metadata: value of 'k' is 19.1 MiB as JSON; the limit is 1.0 MiB"),
    ({"size": MAX_VALUE_BYTES + 2}, "log_metadata: value of 'k' is 1.0 MiB as JSON; the limit is 1.0 MiB"),
    ({"size": MAX_VALUE_BYTES, "count": 5}, "the metadata step 'logs' logs adds up to 5.0 MiB of JSON"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_METADATA, ids=["nul", "long", "space", "20MB", "1MiB+", "5MiB"])
def test_bad_metadata_fails_the_step_the_same_way_on_every_backend(
    backend: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunFailedError) as caught:
        logs_metadata(**arguments)
    assert isinstance(caught.value.__cause__, DefinitionError)
    assert str(caught.value.__cause__).startswith(message), str(caught.value.__cause__)
    assert step_states() == [("logs", Status.FAILED, Status.FAILED)]
    (run,) = Client().list_runs()
    assert message in (run.steps["logs"].error or "")
    kept = run.steps["logs"].metadata  # what the step logged before the refused call
    assert sum(encoded_size(v) for v in kept.values()) <= MAX_RECORD_BYTES and "k4" not in kept
    check_is_clean()


def test_values_at_the_limits_are_recorded_on_every_backend(backend: str) -> None:
    """The limits fit every backend: MariaDB's default max_allowed_packet included."""
    count = MAX_RECORD_BYTES // MAX_VALUE_BYTES
    run = logs_metadata(size=MAX_VALUE_BYTES, count=count)
    metadata = run.steps["logs"].metadata
    assert sorted(metadata) == [f"k{i}" for i in range(count)]
    assert all(encoded_size(v) == MAX_VALUE_BYTES for v in metadata.values())

    @pipeline(name="big parameter")
    def big_parameter(value: str = "") -> None:
        logs(size=len(value) // 100)

    value = "\\" * ((MAX_VALUE_BYTES - 2) // 2)
    assert big_parameter(value=value).parameters == {"value": value}
    with pytest.raises(DefinitionError, match=r"parameter 'value' is 1\.0 MiB as JSON; the limit is 1\.0 MiB"):
        big_parameter(value=value + "\\")
    check_is_clean()


class Tagged:
    """A value whose materializer records metadata with a key no store keeps the same way."""


class BadMetadataMaterializer(Materializer):
    handled_types = (Tagged,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        with fs.open(f"{path}/tagged.txt", "w") as f:
            f.write("tagged")
        return {"nul\x00key": 1}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        return Tagged()


register_materializer(BadMetadataMaterializer())


@step
def make_tagged() -> Tagged:
    return Tagged()


@pipeline(name="bad artifact metadata")
def bad_artifact_metadata() -> None:
    make_tagged()


def test_an_artifacts_bad_metadata_fails_the_step_before_recording(backend: str) -> None:
    with pytest.raises(RunFailedError) as caught:
        bad_artifact_metadata()
    assert str(caught.value.__cause__).startswith(
        "step 'make_tagged': metadata of output 'output': key 'nul\\x00key' contains control characters"
    )
    assert step_states() == [("make_tagged", Status.FAILED, Status.FAILED)]
    check_is_clean()


# --- whatever fails while recording: the step ends failed ----------------------------------------

REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_{table} BEFORE {event} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
    ],
    "mysql": [
        "CREATE TRIGGER refuse_{table} BEFORE {event} ON {table} FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the database'"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the database'; END $$",
        "CREATE TRIGGER refuse_{table} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()",
    ],
}


def refuse(backend: str, table: str, event: str) -> None:
    """Make the database itself refuse every ``event`` on ``table`` (a trigger)."""
    with sql_store().db.transaction() as conn:
        for statement in REFUSE[backend]:
            conn.exec_driver_sql(statement.format(table=table, event=event))


def allow(backend: str, table: str) -> None:
    """Undo :func:`refuse`."""
    with sql_store().db.transaction() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER refuse_{table}" + (f" ON {table}" if backend == "postgresql" else ""))


@step
def measures() -> int:
    log_metadata(accuracy=0.9)
    return 1


@step
def after(value: int) -> int:
    return value


@pipeline(name="recording fails")
def recording_fails() -> None:
    after(measures())


def test_a_step_whose_results_the_database_refuses_is_recorded_failed(backend: str) -> None:
    Client().list_runs()  # opens the store (creates the schema)
    refuse(backend, "metadata", "INSERT")
    with pytest.raises(RunFailedError) as caught:
        recording_fails()
    assert isinstance(caught.value.__cause__, MetadataStoreError)
    assert "refused by the database" in str(caught.value)
    assert sorted(step_states()) == [  # `after` never ran
        ("after", Status.SKIPPED, Status.FAILED),
        ("measures", Status.FAILED, Status.FAILED),
    ]
    (run,) = Client().list_runs()
    error = run.steps["measures"].error or ""
    assert error.startswith("could not record the results of step 'measures': MetadataStoreError: ")
    assert "refused by the database" in error
    assert run.steps["measures"].error_message == error  # no exception of its own: the recording error
    assert dict(run.steps["measures"].outputs) == {}
    check_is_clean()


@step
def independent() -> int:
    return 2


@pipeline(name="recording fails beside an independent step")
def recording_fails_beside() -> None:
    measures()
    independent()


def test_progress_reports_each_start_once_when_a_held_end_is_refused(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`measures` ends and its end is held for `independent`'s start, where the database refuses
    it: `measures` fails after all, and `independent`, decided again, runs; its start is
    reported once."""
    Client().list_runs()
    refuse(backend, "metadata", "INSERT")
    with pytest.raises(RunFailedError):
        recording_fails_beside.with_options(quiet=False)()
    progress = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines() if "[pipeledger]" in line]
    steps = [line.split(" in ")[0] for line in progress if line.startswith("step ")]
    assert steps == [
        "step measures started",
        "step measures completed",
        "step independent started",
        "step measures failed",
        "step independent completed",
    ], progress
    assert sorted(step_states()) == [
        ("independent", Status.COMPLETED, Status.FAILED),
        ("measures", Status.FAILED, Status.FAILED),
    ]


@step
def measures_then_fails() -> int:
    log_metadata(accuracy=0.1)
    raise ValueError("the step's own error")


@pipeline(name="step and recording fail")
def both_fail() -> None:
    measures_then_fails()


def test_a_failed_step_whose_record_is_refused_keeps_both_errors(backend: str) -> None:
    Client().list_runs()
    refuse(backend, "metadata", "INSERT")
    with pytest.raises(RunFailedError) as caught:
        both_fail()
    assert isinstance(caught.value.__cause__, ValueError)  # the step's own error comes first
    (run,) = Client().list_runs()
    error = run.steps["measures_then_fails"].error or ""
    assert error.startswith("could not record the results of step 'measures_then_fails': MetadataStoreError")
    assert "The step itself failed first:" in error and "ValueError: the step's own error" in error
    assert run.steps["measures_then_fails"].error_message == "the step's own error"
    assert step_states() == [("measures_then_fails", Status.FAILED, Status.FAILED)]
    check_is_clean()


def test_a_step_the_database_cannot_finish_is_left_to_crash_detection(backend: str) -> None:
    Client().list_runs()
    refuse(backend, "step_runs", "UPDATE")
    with pytest.raises(MetadataStoreError, match="refused by the database"):
        recording_fails()
    # Neither the step's end nor (therefore) the run's could be recorded: both stay running,
    # never a failed run with a running step, and crash detection ends them together.
    assert step_states() == [("measures", Status.RUNNING, Status.RUNNING)]
    store = sql_store()
    (run,) = store.list_runs()
    assert store.integrity_problems() == []
    allow(backend, "step_runs")  # the database works again
    assert store.mark_crashed(heartbeat_before=utcnow() + timedelta(seconds=1), at=utcnow()) == [run.id]
    assert [s.status for s in store.list_step_runs(run.id)] == [Status.CRASHED]


def test_an_interrupted_step_is_recorded_failed_with_its_run(backend: str) -> None:
    @step
    def interrupted() -> int:
        raise KeyboardInterrupt

    @pipeline(name="interrupted")
    def interrupts() -> None:
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        interrupts()
    assert step_states() == [("interrupted", Status.FAILED, Status.FAILED)]
    check_is_clean()


def test_storable_text() -> None:
    assert storable_text("a\x00b\ud800c") == "a\\x00b\\ud800c"
    cut = storable_text("head " + "x" * 100 + " tail", limit=60)
    assert len(cut) == 60 and cut.startswith("head ") and cut.endswith(" tail") and "characters cut" in cut
    assert storable_text("fine ünïcødé") == "fine ünïcødé"
