"""Artifacts and step I/O edges: finish_step outputs, get_artifact, list_step_io."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeledger.exceptions import MetadataStoreError, NotFoundError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import Direction, EntityKind, Status, new_id
from pipeledger.testing.helpers import artifact, at, finish, make_run, make_step, produce


def _edges(store: MetadataStore, step_run_ids: list[str]) -> dict[tuple[str, str, str], str]:
    """``{(step_run_id, direction, name): artifact_id}`` of every edge."""
    return {(io.step_run_id, io.direction.value, io.name): io.artifact.id for io in store.list_step_io(step_run_ids)}


class ArtifactsContract:
    """Artifacts and step I/O edges: ``finish_step`` outputs, ``get_artifact``, ``list_step_io``."""

    # ------------------------------------------------------ finish_step outputs

    def test_finish_step_returns_artifacts_in_given_order(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        outputs = [artifact(name) for name in ["zeta", "alpha", "mid"]]

        created = finish(store, step, outputs)

        assert [a.id for a in created] == [o.id for o in outputs]
        assert [a.uri for a in created] == [o.uri for o in outputs]

    def test_output_artifacts_record_every_field_and_their_producer(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        output = artifact(
            "model",
            uri="s3://bucket/runs/train-1/model/ü",
            type="Model",
            data_type="sklearn.linear_model.LogisticRegression",
            materializer="pipeledger.materializers.PickleMaterializer",
            materializer_version="2",
            content_hash="f" * 64,
            size=5 * 2**30,  # larger than a 32-bit integer
            artifact_store="s3-store",
        )

        (created,) = finish(store, step, [output], end_time=at(7))

        fetched = store.get_artifact(output.id)
        assert fetched == created
        assert fetched.producer_step_run_id == step.id
        assert fetched.uri == "s3://bucket/runs/train-1/model/ü"
        assert fetched.type == "Model"
        assert fetched.data_type == "sklearn.linear_model.LogisticRegression"
        assert fetched.materializer == "pipeledger.materializers.PickleMaterializer"
        assert fetched.materializer_version == "2"
        assert fetched.content_hash == "f" * 64
        assert fetched.size == 5 * 2**30
        assert fetched.artifact_store == "s3-store"
        assert fetched.created_at == at(7)
        assert fetched.created_at.utcoffset() == timedelta(0)

    def test_artifact_store_is_optional(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))

        (created,) = finish(store, step, [artifact("out")])

        assert store.get_artifact(created.id).artifact_store is None

    # ---------------------------------------------------------- get_run_steps

    def test_get_run_steps_is_the_run_its_steps_and_their_edges(self, store: MetadataStore) -> None:
        run = make_run(store)
        load = make_step(store, run, "load", start_time=at(1))
        (data,) = finish(store, load, [artifact("data")], end_time=at(2))
        train = make_step(store, run, "train", inputs={"data": data.id}, start_time=at(3))
        finish(store, train, [artifact("model"), artifact("metrics")], end_time=at(4))
        make_step(store, make_run(store), "load")  # another run's step: not in the view

        for name_or_id in (run.name, run.id):
            view = store.get_run_steps(name_or_id)
            assert view.run == store.get_run(run.id)
            assert view.steps == store.list_step_runs(run.id)
            assert [s.name for s in view.steps] == ["load", "train"]
            assert sorted(view.io, key=repr) == sorted(store.list_step_io([load.id, train.id]), key=repr)
            assert {(io.step_run_id, io.direction.value, io.name) for io in view.io} == {
                (load.id, "output", "data"),
                (train.id, "input", "data"),
                (train.id, "output", "model"),
                (train.id, "output", "metrics"),
            }

    def test_get_run_steps_of_a_run_without_steps(self, store: MetadataStore) -> None:
        run = make_run(store)
        view = store.get_run_steps(run.id)
        assert (view.run.id, view.steps, view.io) == (run.id, [], [])

    def test_get_run_steps_of_an_unknown_run_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-run"):
            store.get_run_steps("no-such-run")

    # ------------------------------------------------------ output edges

    def test_finish_step_records_output_edges(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        outputs = [artifact("features"), artifact("labels")]

        finish(store, step, outputs)

        assert _edges(store, [step.id]) == {
            (step.id, "output", "features"): outputs[0].id,
            (step.id, "output", "labels"): outputs[1].id,
        }

    def test_finish_step_records_step_and_artifact_metadata(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        outputs = [artifact("model", metadata={"accuracy": 0.93}), artifact("report")]

        finish(store, step, outputs, metadata={"rows": 1000, "warnings": []})

        assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {step.id: {"rows": 1000, "warnings": []}}
        assert store.get_metadata(EntityKind.ARTIFACT, [o.id for o in outputs]) == {outputs[0].id: {"accuracy": 0.93}}

    def test_finish_step_metadata_replaces_existing_keys(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        store.put_metadata(EntityKind.STEP_RUN, step.id, {"rows": 1, "source": "csv"})

        finish(store, step, metadata={"rows": 2})

        assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {step.id: {"rows": 2, "source": "csv"}}

    def test_finish_step_with_status_and_outputs(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))

        finish(store, step, [artifact("out")], status=Status.CACHED, logs_uri="file:///l")

        fetched = store.get_step_run(step.id)
        assert fetched.status is Status.CACHED
        assert fetched.logs_uri == "file:///l"

    def test_finish_unknown_step_raises_not_found_and_inserts_nothing(self, store: MetadataStore) -> None:
        output = artifact("out", metadata={"k": 1})

        with pytest.raises(NotFoundError, match="no-such-step"):
            store.finish_step("no-such-step", Status.COMPLETED, end_time=at(1), outputs=[output], metadata={"k": 2})

        with pytest.raises(NotFoundError):
            store.get_artifact(output.id)
        assert store.get_metadata(EntityKind.ARTIFACT, [output.id]) == {}
        assert store.get_metadata(EntityKind.STEP_RUN, ["no-such-step"]) == {}

    def test_failed_finish_step_changes_nothing(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        outputs = [artifact("same", metadata={"k": 1}), artifact("same")]  # duplicate edge name

        with pytest.raises(MetadataStoreError):
            finish(store, step, outputs, metadata={"rows": 3})

        assert store.get_step_run(step.id) == step
        for output in outputs:
            with pytest.raises(NotFoundError):
                store.get_artifact(output.id)
        assert store.list_step_io([step.id]) == []
        assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {}
        assert store.get_metadata(EntityKind.ARTIFACT, [o.id for o in outputs]) == {}

    def test_get_unknown_artifact_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-artifact"):
            store.get_artifact("no-such-artifact")

    # ---------------------------------------------------------------------- list_step_io

    def test_list_step_io_returns_both_directions_for_several_steps(self, store: MetadataStore) -> None:
        run = make_run(store)
        load, (raw,) = produce(store, run, "load", outputs=["raw"])
        clean, (features, labels) = produce(
            store, run, "clean", outputs=["features", "labels"], inputs={"data": raw.id}
        )
        train, (model,) = produce(store, run, "train", outputs=["model"], inputs={"x": features.id, "y": labels.id})

        assert _edges(store, [load.id, clean.id, train.id]) == {
            (load.id, "output", "raw"): raw.id,
            (clean.id, "input", "data"): raw.id,
            (clean.id, "output", "features"): features.id,
            (clean.id, "output", "labels"): labels.id,
            (train.id, "input", "x"): features.id,
            (train.id, "input", "y"): labels.id,
            (train.id, "output", "model"): model.id,
        }

    def test_list_step_io_carries_full_artifact_records(self, store: MetadataStore) -> None:
        run = make_run(store)
        _, (raw,) = produce(store, run, "load", outputs=["raw"])
        clean = make_step(store, run, "clean", inputs={"data": raw.id})

        (edge,) = store.list_step_io([clean.id])

        assert edge.direction is Direction.INPUT
        assert edge.step_run_id == clean.id
        assert edge.artifact == store.get_artifact(raw.id) == raw

    def test_one_artifact_can_feed_several_steps_and_runs(self, store: MetadataStore) -> None:
        first = make_run(store)
        _, (raw,) = produce(store, first, "load", outputs=["raw"])
        a = make_step(store, first, "a", inputs={"data": raw.id})
        b = make_step(store, make_run(store), "b", inputs={"data": raw.id, "again": raw.id})

        assert _edges(store, [a.id, b.id]) == {
            (a.id, "input", "data"): raw.id,
            (b.id, "input", "data"): raw.id,
            (b.id, "input", "again"): raw.id,
        }

    def test_list_step_io_only_returns_edges_of_the_given_steps(self, store: MetadataStore) -> None:
        run = make_run(store)
        load, (raw,) = produce(store, run, "load", outputs=["raw"])
        make_step(store, run, "clean", inputs={"data": raw.id})

        assert _edges(store, [load.id]) == {(load.id, "output", "raw"): raw.id}

    def test_list_step_io_of_nothing_is_empty(self, store: MetadataStore) -> None:
        assert store.list_step_io([]) == []
        assert store.list_step_io(["no-such-step"]) == []

    def test_list_step_io_with_repeated_ids_returns_each_edge_once(self, store: MetadataStore) -> None:
        step, _ = produce(store, make_run(store), "load", outputs=["a", "b"])

        assert len(store.list_step_io([step.id, step.id, step.id])) == 2

    def test_list_step_io_with_more_than_500_ids(self, store: MetadataStore) -> None:
        run = make_run(store)
        first, (raw,) = produce(store, run, "load", outputs=["raw"])
        last, (model,) = produce(store, run, "train", outputs=["model"], inputs={"x": raw.id})
        ids = [first.id, *(new_id() for _ in range(1100)), last.id]  # real ids in the 1st and 3rd chunk

        assert _edges(store, ids) == {
            (first.id, "output", "raw"): raw.id,
            (last.id, "input", "x"): raw.id,
            (last.id, "output", "model"): model.id,
        }

    def test_list_step_io_with_more_than_500_real_step_runs(self, store: MetadataStore) -> None:
        run = make_run(store)
        step = make_step(store, run, "fan_out")
        outputs = [artifact(f"part_{i}") for i in range(520)]
        finish(store, step, outputs)
        consumers = [make_step(store, run, f"use_{i}", inputs={"part": o.id}) for i, o in enumerate(outputs)]

        edges = store.list_step_io([c.id for c in consumers])

        assert len(edges) == 520
        assert {(e.step_run_id, e.artifact.id) for e in edges} == {(c.id, o.id) for c, o in zip(consumers, outputs)}
