"""Contract: finishing one step run and starting the next in one call
(:meth:`~pipeledger.metadata_store.base.MetadataStore.finish_and_start`)."""

from __future__ import annotations

import pytest

from pipeledger.exceptions import NotFoundError, StepRunExistsError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import Direction, EntityKind, Status, StepRunCreate
from pipeledger.testing.helpers import artifact, at, make_run, make_step


class FinishAndStartContract:
    """``finish_and_start`` records exactly what ``finish_step`` then ``start_step`` would."""

    def test_finishes_one_step_and_starts_the_next_on_its_outputs(self, store: MetadataStore) -> None:
        run = make_run(store)
        first = make_step(store, run, "load", start_time=at(1))
        outputs = [artifact("rows", metadata={"count": 4}), artifact("schema")]
        following = StepRunCreate(run_id=run.id, name="train", start_time=at(3), inputs={"data": outputs[0].id})

        created, started = store.finish_and_start(
            first.id,
            Status.COMPLETED,
            end_time=at(2),
            outputs=outputs,
            metadata={"rows": 4},
            logs_uri="file:///logs/load.txt",
            next_step=following,
        )

        assert [a.id for a in created] == [o.id for o in outputs]
        assert started.id == following.id and started.status is Status.RUNNING
        finished = store.get_step_run(first.id)
        assert finished.status is Status.COMPLETED and finished.end_time == at(2)
        assert finished.logs_uri == "file:///logs/load.txt"
        assert store.get_step_run(following.id).status is Status.RUNNING
        assert store.get_metadata(EntityKind.STEP_RUN, [first.id]) == {first.id: {"rows": 4}}
        assert store.get_metadata(EntityKind.ARTIFACT, [outputs[0].id]) == {outputs[0].id: {"count": 4}}
        assert store.get_artifact(outputs[0].id).producer_step_run_id == first.id
        edges = {
            (io.step_run_id, io.direction, io.name): io.artifact.id
            for io in store.list_step_io([first.id, following.id])
        }
        assert edges == {
            (first.id, Direction.OUTPUT, "rows"): outputs[0].id,
            (first.id, Direction.OUTPUT, "schema"): outputs[1].id,
            (following.id, Direction.INPUT, "data"): outputs[0].id,
        }

    def test_a_failed_step_can_be_finished_with_its_error(self, store: MetadataStore) -> None:
        run = make_run(store)
        first = make_step(store, run, "load")
        following = StepRunCreate(run_id=run.id, name="report")

        created, _ = store.finish_and_start(
            first.id,
            Status.FAILED,
            end_time=at(2),
            error="Traceback ...\nValueError: bad rows",
            error_message="bad rows",
            next_step=following,
        )

        assert created == []
        failed = store.get_step_run(first.id)
        assert failed.status is Status.FAILED and failed.error_message == "bad rows"
        assert store.get_step_run(following.id).status is Status.RUNNING

    def test_an_unknown_step_run_is_not_found(self, store: MetadataStore) -> None:
        run = make_run(store)
        following = StepRunCreate(run_id=run.id, name="train")

        with pytest.raises(NotFoundError):
            store.finish_and_start("0" * 32, Status.COMPLETED, end_time=at(2), next_step=following)

        assert [s.name for s in store.list_step_runs(run.id)] == []

    def test_a_next_step_that_exists_is_refused(self, store: MetadataStore) -> None:
        run = make_run(store)
        first = make_step(store, run, "load")
        make_step(store, run, "train")

        with pytest.raises(StepRunExistsError):
            store.finish_and_start(
                first.id, Status.COMPLETED, end_time=at(2), next_step=StepRunCreate(run_id=run.id, name="train")
            )
