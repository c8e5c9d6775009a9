"""Contract: ``lineage`` walks artifacts through step runs, across runs and pipelines:
upstream, downstream and both, from an artifact or a step run, with depth limits, following
artifacts reused by cached steps to their true producers."""

from __future__ import annotations

from typing import Any

import pytest

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactRecord, LineageRecord, RunRecord, Status, StepRunCreate, StepRunRecord
from pipeledger.testing.helpers import at, make_run, produce

Edge = tuple[str, str, str, str]  # (step label, "input"/"output", io name, artifact label)


class Labels:
    """Short labels for the ids of the step runs and artifacts a test builds, so graphs compare
    as readable sets."""

    def __init__(self) -> None:
        self.by_id: dict[str, str] = {}

    def produce(
        self,
        store: MetadataStore,
        run: RunRecord,
        label: str,
        step_name: str,
        outputs: list[str],
        inputs: dict[str, str] | None = None,
    ) -> tuple[Any, ...]:
        """``produce`` a completed step; labels it ``label`` and its outputs ``label.output``.
        Returns the step run and its artifacts."""
        step, created = produce(store, run, step_name, outputs, inputs)
        self.by_id[step.id] = label
        for name, art in zip(outputs, created):
            self.by_id[art.id] = f"{label}.{name}"
        return (step, *created)

    def steps(self, record: LineageRecord) -> set[str]:
        return {self.by_id[s] for s in record.steps}

    def artifacts(self, record: LineageRecord) -> set[str]:
        return {self.by_id[a] for a in record.artifacts}

    def edges(self, record: LineageRecord) -> set[Edge]:
        labelled = [
            (self.by_id[e.step_run_id], e.direction.value, e.name, self.by_id[e.artifact_id]) for e in record.edges
        ]
        assert len(labelled) == len(set(labelled)), f"duplicate edges: {labelled}"
        return set(labelled)


def check_consistent(record: LineageRecord) -> None:
    """Every edge joins nodes of the record, and every node has an edge."""
    assert {e.step_run_id for e in record.edges} == set(record.steps)
    assert {e.artifact_id for e in record.edges} == set(record.artifacts)
    for step_id, step in record.steps.items():
        assert step.id == step_id
    for art_id, art in record.artifacts.items():
        assert art.id == art_id


# ------------------------------------------------------------------------------ diamond


class Diamond:
    """a -> b, a -> c, (b, c) -> d in one run of pipeline ``dag``."""

    def __init__(self, store: MetadataStore) -> None:
        self.labels = Labels()
        self.run = make_run(store, "dag")
        self.a, self.a_out = self.labels.produce(store, self.run, "a", "a", ["out"])
        self.b, self.b_out = self.labels.produce(store, self.run, "b", "b", ["out"], {"x": self.a_out.id})
        self.c, self.c_out = self.labels.produce(store, self.run, "c", "c", ["out"], {"x": self.a_out.id})
        self.d, self.d_out = self.labels.produce(
            store, self.run, "d", "d", ["out"], {"left": self.b_out.id, "right": self.c_out.id}
        )


DIAMOND_EDGES = {
    ("a", "output", "out", "a.out"),
    ("b", "input", "x", "a.out"),
    ("b", "output", "out", "b.out"),
    ("c", "input", "x", "a.out"),
    ("c", "output", "out", "c.out"),
    ("d", "input", "left", "b.out"),
    ("d", "input", "right", "c.out"),
    ("d", "output", "out", "d.out"),
}


def cached(
    store: MetadataStore, run: RunRecord, name: str, original: StepRunRecord, outputs: dict[str, str], **inputs: str
) -> StepRunRecord:
    """Record ``name`` in ``run`` as a cache hit of ``original`` reusing ``outputs``."""
    return store.record_cached_step(
        StepRunCreate(run_id=run.id, name=name, inputs=dict(inputs), start_time=at(100)),
        cached_from_id=original.id,
        outputs=outputs,
    )


class TwoRuns:
    """Run 1: load -> prep -> train. Run 2 (lr changed): load and prep cached, train recomputed."""

    def __init__(self, store: MetadataStore) -> None:
        self.labels = Labels()
        L = self.labels
        self.run1 = make_run(store, "train", name="train-first")
        self.load1, self.raw = L.produce(store, self.run1, "load1", "load", ["raw"])
        self.prep1, self.features = L.produce(store, self.run1, "prep1", "prep", ["features"], {"raw": self.raw.id})
        self.train1, self.model1 = L.produce(
            store, self.run1, "train1", "train", ["model"], {"features": self.features.id}
        )
        self.run2 = make_run(store, "train", name="train-second")
        self.load2 = cached(store, self.run2, "load", self.load1, {"raw": self.raw.id})
        self.prep2 = cached(store, self.run2, "prep", self.prep1, {"features": self.features.id}, raw=self.raw.id)
        L.by_id[self.load2.id], L.by_id[self.prep2.id] = "load2", "prep2"
        self.train2, self.model2 = L.produce(
            store, self.run2, "train2", "train", ["model"], {"features": self.features.id}
        )


def chain(store: MetadataStore, length: int, run_name: str = "chain-1") -> tuple[Labels, list[ArtifactRecord]]:
    """s1 -> a1 -> s2 -> a2 -> ... -> s<length> -> a<length>."""
    labels = Labels()
    run = make_run(store, "chain", name=run_name)
    outputs: list[ArtifactRecord] = []
    for i in range(1, length + 1):
        inputs = {"data": outputs[-1].id} if outputs else {}
        _, out = labels.produce(store, run, f"s{i}", f"s{i}", ["data"], inputs)
        outputs.append(out)
    return labels, outputs


def _step_id(labels: Labels, label: str) -> str:
    return next(i for i, name in labels.by_id.items() if name == label)


class LineageContract:
    """``lineage`` upstream, downstream and both, from an artifact or a step run, with depth limits."""

    def test_upstream_of_a_diamond_has_every_node_once_with_typed_edges(self, store: MetadataStore) -> None:
        g = Diamond(store)

        record = store.lineage(artifact_id=g.d_out.id)

        check_consistent(record)
        assert g.labels.steps(record) == {"a", "b", "c", "d"}
        assert g.labels.artifacts(record) == {"a.out", "b.out", "c.out", "d.out"}
        assert g.labels.edges(record) == DIAMOND_EDGES  # a.out reached twice, listed once
        d = record.steps[g.d.id]
        assert (d.name, d.status, d.run_id, d.run_name, d.pipeline_name) == (
            "d",
            Status.COMPLETED,
            g.run.id,
            g.run.name,
            "dag",
        )
        assert d.start_time == g.d.start_time and d.end_time == at(60) and d.cached_from_id is None
        a_out = record.artifacts[g.a_out.id]
        assert a_out == store.get_artifact(g.a_out.id)  # full artifact records
        assert a_out.producer_step_run_id == g.a.id

    def test_downstream_of_a_diamond_reaches_the_join(self, store: MetadataStore) -> None:
        g = Diamond(store)

        record = store.lineage(artifact_id=g.a_out.id, direction="downstream")

        check_consistent(record)
        assert g.labels.steps(record) == {"b", "c", "d"}  # the producer of the start is upstream
        assert g.labels.edges(record) == DIAMOND_EDGES - {("a", "output", "out", "a.out")}

    def test_both_directions_from_one_branch(self, store: MetadataStore) -> None:
        g = Diamond(store)

        record = store.lineage(artifact_id=g.b_out.id, direction="both")

        check_consistent(record)
        # c is neither an ancestor nor a descendant of b.out; d's other input is not part of it.
        assert g.labels.steps(record) == {"a", "b", "d"}
        assert g.labels.edges(record) == {
            ("a", "output", "out", "a.out"),
            ("b", "input", "x", "a.out"),
            ("b", "output", "out", "b.out"),
            ("d", "input", "left", "b.out"),
            ("d", "output", "out", "d.out"),
        }
        assert g.labels.edges(store.lineage(artifact_id=g.a_out.id, direction="both")) == DIAMOND_EDGES
        assert g.labels.edges(store.lineage(artifact_id=g.d_out.id, direction="both")) == DIAMOND_EDGES

    def test_lineage_around_a_step_run(self, store: MetadataStore) -> None:
        g = Diamond(store)

        up = store.lineage(step_run_id=g.d.id)
        down = store.lineage(step_run_id=g.b.id, direction="downstream")
        both = store.lineage(step_run_id=g.b.id, direction="both")

        # Upstream of a step: its inputs and their ancestry (not its own outputs).
        assert g.labels.edges(up) == DIAMOND_EDGES - {("d", "output", "out", "d.out")}
        # Downstream of a step: its outputs and their descendants (not its own inputs).
        assert g.labels.edges(down) == {
            ("b", "output", "out", "b.out"),
            ("d", "input", "left", "b.out"),
            ("d", "output", "out", "d.out"),
        }
        assert g.labels.edges(both) == g.labels.edges(down) | {
            ("a", "output", "out", "a.out"),
            ("b", "input", "x", "a.out"),
        }
        source = store.lineage(step_run_id=g.a.id)  # no inputs: nothing upstream
        assert (source.steps, source.artifacts, source.edges) == ({}, {}, [])

    def test_sources_sinks_and_isolated_artifacts(self, store: MetadataStore) -> None:
        g = Diamond(store)
        run = make_run(store, "other")
        _, alone = Labels().produce(store, run, "alone", "alone", ["out"])

        source = store.lineage(artifact_id=g.a_out.id)
        assert g.labels.edges(source) == {("a", "output", "out", "a.out")}
        sink = store.lineage(artifact_id=g.d_out.id, direction="downstream")
        assert (sink.steps, sink.artifacts, sink.edges) == ({}, {}, [])
        nothing_consumed = store.lineage(artifact_id=alone.id, direction="downstream")
        assert nothing_consumed.edges == []
        unknown = store.lineage(artifact_id="0" * 32, direction="both")
        assert (unknown.steps, unknown.artifacts, unknown.edges) == ({}, {}, [])

    def test_bad_arguments_are_refused(self, store: MetadataStore) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            store.lineage()
        with pytest.raises(ValueError, match="exactly one"):
            store.lineage(artifact_id="a" * 32, step_run_id="b" * 32)
        with pytest.raises(ValueError, match="direction"):
            store.lineage(artifact_id="a" * 32, direction="sideways")
        with pytest.raises(ValueError, match="depth"):
            store.lineage(artifact_id="a" * 32, depth=-1)

    # -------------------------------------------------------------------- across runs, cache

    def test_upstream_follows_reused_artifacts_to_their_true_producers(self, store: MetadataStore) -> None:
        t = TwoRuns(store)

        record = store.lineage(artifact_id=t.model2.id)

        check_consistent(record)
        assert t.labels.edges(record) == {
            ("load1", "output", "raw", "load1.raw"),
            ("prep1", "input", "raw", "load1.raw"),
            ("prep1", "output", "features", "prep1.features"),
            ("train2", "input", "features", "prep1.features"),
            ("train2", "output", "model", "train2.model"),
        }  # the cached step runs of run 2 only reused: they are not producers
        assert {record.steps[s].run_name for s in (t.load1.id, t.prep1.id)} == {"train-first"}
        assert record.steps[t.train2.id].run_name == "train-second"
        assert record.artifacts[t.features.id].producer_step_run_id == t.prep1.id

    def test_a_cached_step_run_reaches_its_reused_outputs_and_their_consumers(self, store: MetadataStore) -> None:
        t = TwoRuns(store)

        down = store.lineage(step_run_id=t.prep2.id, direction="downstream")
        up = store.lineage(step_run_id=t.prep2.id)

        assert t.labels.edges(down) == {
            ("prep2", "output", "features", "prep1.features"),  # a reuse edge (the record says who produced it)
            ("train1", "input", "features", "prep1.features"),
            ("train1", "output", "model", "train1.model"),
            ("train2", "input", "features", "prep1.features"),
            ("train2", "output", "model", "train2.model"),
        }
        assert down.steps[t.prep2.id].status is Status.CACHED
        assert down.steps[t.prep2.id].cached_from_id == t.prep1.id
        assert down.artifacts[t.features.id].producer_step_run_id == t.prep1.id
        assert t.labels.edges(up) == {("prep2", "input", "raw", "load1.raw"), ("load1", "output", "raw", "load1.raw")}

    def test_downstream_of_a_reused_artifact_spans_runs_and_pipelines(self, store: MetadataStore) -> None:
        t = TwoRuns(store)
        serve_run = make_run(store, "serve", name="serve-first")
        t.labels.produce(store, serve_run, "serve", "deploy", ["endpoint"], {"model": t.model1.id})

        record = store.lineage(artifact_id=t.features.id, direction="downstream")

        assert t.labels.steps(record) == {"train1", "train2", "serve"}
        assert t.labels.artifacts(record) == {"prep1.features", "train1.model", "train2.model", "serve.endpoint"}
        assert {(s.name, s.run_name, s.pipeline_name) for s in record.steps.values()} == {
            ("train", "train-first", "train"),
            ("train", "train-second", "train"),
            ("deploy", "serve-first", "serve"),
        }

    # ------------------------------------------------------------------------------- depth

    def test_upstream_depth_limits(self, store: MetadataStore) -> None:
        labels, arts = chain(store, 4)
        last = arts[-1].id

        def steps(depth: int | None) -> set[str]:
            record = store.lineage(artifact_id=last, depth=depth)
            check_consistent(record)
            return labels.steps(record)

        assert store.lineage(artifact_id=last, depth=0).edges == []
        assert steps(1) == {"s4"}
        assert labels.edges(store.lineage(artifact_id=last, depth=1)) == {
            ("s4", "input", "data", "s3.data"),
            ("s4", "output", "data", "s4.data"),
        }
        assert steps(2) == {"s4", "s3"}
        assert labels.artifacts(store.lineage(artifact_id=last, depth=2)) == {"s4.data", "s3.data", "s2.data"}
        assert steps(3) == {"s4", "s3", "s2"}
        assert steps(4) == steps(100) == steps(None) == {"s1", "s2", "s3", "s4"}

    def test_downstream_depth_limits(self, store: MetadataStore) -> None:
        labels, arts = chain(store, 4)
        first = arts[0].id

        def steps(depth: int | None) -> set[str]:
            return labels.steps(store.lineage(artifact_id=first, direction="downstream", depth=depth))

        assert store.lineage(artifact_id=first, direction="downstream", depth=0).edges == []
        assert steps(1) == {"s2"}
        assert labels.edges(store.lineage(artifact_id=first, direction="downstream", depth=1)) == {
            ("s2", "input", "data", "s1.data"),
            ("s2", "output", "data", "s2.data"),
        }
        assert steps(2) == {"s2", "s3"}
        assert steps(3) == steps(None) == {"s2", "s3", "s4"}
        middle = arts[1].id
        both = store.lineage(artifact_id=middle, direction="both", depth=1)
        assert labels.steps(both) == {"s2", "s3"}
        assert labels.steps(store.lineage(step_run_id=_step_id(labels, "s3"), direction="both", depth=1)) == {
            "s2",
            "s3",
            "s4",
        }

    def test_depth_zero_around_a_step_run_is_the_step_itself(self, store: MetadataStore) -> None:
        labels, _ = chain(store, 4)
        s3 = _step_id(labels, "s3")

        assert labels.edges(store.lineage(step_run_id=s3, direction="both", depth=0)) == {
            ("s3", "input", "data", "s2.data"),
            ("s3", "output", "data", "s3.data"),
        }
        assert labels.steps(store.lineage(step_run_id=s3, depth=1)) == {"s2", "s3"}

    def test_depth_counts_the_shortest_way_to_a_step(self, store: MetadataStore) -> None:
        """d consumes a.out directly as well as through b: a is 2 steps from d.out, not 3."""
        labels = Labels()
        run = make_run(store, "shortcut")
        _, a_out = labels.produce(store, run, "a", "a", ["out"])
        _, b_out = labels.produce(store, run, "b", "b", ["out"], {"x": a_out.id})
        _, c_out = labels.produce(store, run, "c", "c", ["out"], {"x": b_out.id})
        _, d_out = labels.produce(store, run, "d", "d", ["out"], {"long": c_out.id, "short": a_out.id})

        assert labels.steps(store.lineage(artifact_id=d_out.id, depth=1)) == {"d"}
        assert labels.steps(store.lineage(artifact_id=d_out.id, depth=2)) == {"d", "c", "a"}
        assert labels.steps(store.lineage(artifact_id=d_out.id, depth=3)) == {"d", "c", "b", "a"}
        assert labels.steps(store.lineage(artifact_id=a_out.id, direction="downstream", depth=1)) == {"b", "d"}
