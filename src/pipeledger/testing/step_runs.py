"""Step runs: start_step, finish_step (status side), get_step_run, list_step_runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeledger.exceptions import MetadataStoreError, NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import Status, StepRunCreate
from pipeledger.testing.helpers import T0, at, finish, make_run, make_step, produce


class StepRunsContract:
    """Step runs: ``start_step``, ``finish_step`` (status side), ``get_step_run``, ``list_step_runs``."""

    # --------------------------------------------------------------- start_step

    def test_start_step_records_a_running_step(self, store: MetadataStore) -> None:
        run = make_run(store)

        step = make_step(store, run, "load", start_time=T0)

        assert step.status is Status.RUNNING
        assert step.run_id == run.id
        assert step.end_time is None
        assert store.get_step_run(step.id) == step

    def test_start_step_records_every_field(self, store: MetadataStore) -> None:
        run = make_run(store)
        request = StepRunCreate(
            run_id=run.id,
            name="train_model",
            entrypoint="my_project.steps:train_model",
            docstring="Fits the model. ✓",
            parameters={"epochs": 3, "lr": 0.5, "tags": ["a", "b"], "opt": {"name": "adam"}},
            config={"inputs": {}, "outputs": ["model"], "cache": False},
            source_hash="d" * 64,
            cache_key="e" * 64,
            start_time=at(3),
        )

        step = store.start_step(request)

        fetched = store.get_step_run(request.id)
        assert fetched == step
        assert fetched.id == request.id
        assert fetched.name == "train_model"
        assert fetched.entrypoint == "my_project.steps:train_model"
        assert fetched.docstring == "Fits the model. ✓"
        assert fetched.parameters == request.parameters
        assert fetched.config == request.config
        assert fetched.source_hash == "d" * 64
        assert fetched.cache_key == "e" * 64
        assert fetched.start_time == at(3)
        assert fetched.start_time.utcoffset() == timedelta(0)
        assert fetched.cached_from_id is None

    def test_start_step_records_input_edges(self, store: MetadataStore) -> None:
        run = make_run(store)
        _, (data,) = produce(store, run, "load", outputs=["data"])

        step = make_step(store, run, "train", inputs={"dataset": data.id})

        (edge,) = store.list_step_io([step.id])
        assert (edge.name, edge.direction.value, edge.artifact) == ("dataset", "input", data)

    def test_same_step_name_in_two_runs_is_allowed(self, store: MetadataStore) -> None:
        first = make_step(store, make_run(store), "load")
        second = make_step(store, make_run(store), "load")

        assert first.id != second.id

    def test_duplicate_step_name_in_a_run_fails(self, store: MetadataStore) -> None:
        run = make_run(store)
        first = make_step(store, run, "load")

        with pytest.raises(MetadataStoreError, match="load"):
            make_step(store, run, "load")
        assert store.list_step_runs(run.id) == [first]

    def test_start_step_of_unknown_run_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-run"):
            store.start_step(StepRunCreate(run_id="no-such-run", name="load"))

    def test_missing_input_artifact_raises_not_found_and_records_nothing(self, store: MetadataStore) -> None:
        run = make_run(store)
        _, (data,) = produce(store, run, "load", outputs=["data"])
        request = StepRunCreate(run_id=run.id, name="train", inputs={"dataset": data.id, "labels": "missing-artifact"})

        with pytest.raises(NotFoundError, match="missing-artifact"):
            store.start_step(request)

        with pytest.raises(NotFoundError):
            store.get_step_run(request.id)
        assert [s.name for s in store.list_step_runs(run.id)] == ["load"]
        assert store.list_step_io([request.id]) == []

    def test_step_can_be_started_after_a_failed_start(self, store: MetadataStore) -> None:
        run = make_run(store)
        with pytest.raises(NotFoundError):
            make_step(store, run, "train", inputs={"dataset": "missing-artifact"})

        step = make_step(store, run, "train")

        assert store.list_step_runs(run.id) == [step]

    # ------------------------------------------------------------------ list_step_runs

    def test_list_step_runs_in_start_order(self, store: MetadataStore) -> None:
        run = make_run(store)
        names = ["load", "clean", "train", "evaluate", "a_report"]
        for i, name in enumerate(names):
            make_step(store, run, name, start_time=at(i))

        assert [s.name for s in store.list_step_runs(run.id)] == names

    def test_list_step_runs_orders_by_start_time_not_insertion(self, store: MetadataStore) -> None:
        run = make_run(store)
        make_step(store, run, "second", start_time=at(2))
        make_step(store, run, "first", start_time=at(1))

        assert [s.name for s in store.list_step_runs(run.id)] == ["first", "second"]

    def test_list_step_runs_only_returns_the_runs_steps(self, store: MetadataStore) -> None:
        run = make_run(store)
        other = make_run(store)
        mine = make_step(store, run, "load")
        make_step(store, other, "load")

        assert store.list_step_runs(run.id) == [mine]

    def test_list_step_runs_of_unknown_run_is_empty(self, store: MetadataStore) -> None:
        assert store.list_step_runs("no-such-run") == []

    # -------------------------------------------------------------------- finish_step

    def test_finish_step_sets_status_end_time_error_and_logs(self, store: MetadataStore) -> None:
        run = make_run(store)
        step = make_step(store, run, "train", start_time=at(0))

        result = store.finish_step(
            step.id,
            Status.FAILED,
            end_time=at(12),
            error="Traceback...\nValueError: bad",
            logs_uri="file:///logs/train.log",
        )

        assert result == []
        fetched = store.get_step_run(step.id)
        assert fetched.status is Status.FAILED
        assert fetched.end_time == at(12)
        assert fetched.end_time.utcoffset() == timedelta(0)
        assert fetched.error == "Traceback...\nValueError: bad"
        assert fetched.logs_uri == "file:///logs/train.log"
        assert fetched.start_time == at(0)
        assert fetched.name == "train"

    def test_a_failed_steps_error_message_is_read_back_exactly(self, store: MetadataStore) -> None:
        run = make_run(store)
        step = make_step(store, run, "train")
        message = "column 'x' is missing ✓\n  expected: ['x', \"y\"]\n\tgot: []\n"  # every line, as raised
        traceback = f'Traceback (most recent call last):\n  File "t.py", line 1\nKeyError: {message}\nnote: a note'

        finish(store, step, status=Status.FAILED, error=traceback, error_message=message)

        fetched = store.get_step_run(step.id)
        assert (fetched.error_message, fetched.error) == (message, traceback)
        assert fetched.failure_message == message  # not the traceback's last line (the note)
        (listed,) = store.list_step_runs(run.id)
        assert listed.error_message == message

    def test_a_step_recorded_without_error_message_shows_the_tracebacks_last_line(self, store: MetadataStore) -> None:
        run = make_run(store)
        failed = make_step(store, run, "train")
        done = make_step(store, run, "load")

        finish(store, failed, status=Status.FAILED, error="Traceback...\nValueError: bad\n")
        finish(store, done)

        fetched = store.get_step_run(failed.id)
        assert fetched.error_message is None
        assert fetched.failure_message == "ValueError: bad"
        completed = store.get_step_run(done.id)
        assert (completed.error, completed.error_message, completed.failure_message) == (None, None, None)

    def test_finish_step_only_touches_its_step(self, store: MetadataStore) -> None:
        run = make_run(store)
        step = make_step(store, run, "load")
        other = make_step(store, run, "train")

        finish(store, step)

        assert store.get_step_run(other.id) == other

    def test_finish_step_twice_with_same_values_is_not_an_error(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))

        finish(store, step, end_time=at(5))
        finish(store, step, end_time=at(5))

        assert store.get_step_run(step.id).status is Status.COMPLETED

    def test_get_unknown_step_run_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-step"):
            store.get_step_run("no-such-step")
