"""Contract: cache look-ups, cached step runs, invalidation, the latest earlier run of a step."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipeledger.exceptions import CacheEntryGoneError, NotFoundError, UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactRecord, Direction, EntityKind, RunRecord, Status, StepRunCreate, StepRunRecord
from pipeledger.testing.helpers import artifact, at, finish, make_run, make_step

KEY = "c" * 64


def computed(
    store: MetadataStore,
    run: RunRecord,
    name: str = "train",
    key: str = KEY,
    end: float = 60.0,
    status: Status = Status.COMPLETED,
    outputs: Sequence[str] = ("model",),
) -> tuple[StepRunRecord, list[ArtifactRecord]]:
    """Start and finish step ``name`` of ``run`` with cache key ``key``, ending at ``at(end)``."""
    step = make_step(
        store, run, name, cache_key=key, cache_components={"parameters": {"lr": 0.1}}, start_time=at(end - 1)
    )
    arts = finish(
        store,
        step,
        [artifact(o, uri=f"/a/{run.name}/{o}") for o in outputs],
        status=status,
        end_time=at(end),
        metadata={"accuracy": 0.5},
    )
    return step, arts


class CacheContract:
    """Cache look-ups, cached step runs, invalidation, the latest earlier run of a step."""

    def test_find_cached_step_returns_latest_completed_with_outputs(self, store: MetadataStore) -> None:
        assert store.find_cached_step(KEY) is None
        run1, run2, run3 = (make_run(store) for _ in range(3))
        computed(store, run1, end=10)
        newest, arts = computed(store, run2, end=20, outputs=("model", "metrics"))
        computed(store, run3, end=30, status=Status.FAILED, outputs=())
        hit = store.find_cached_step(KEY)
        assert hit is not None
        assert hit.step_run.id == newest.id and hit.step_run.status is Status.COMPLETED
        assert hit.step_run.cache_components == {"parameters": {"lr": 0.1}}
        assert {n: a.id for n, a in hit.outputs.items()} == {"model": arts[0].id, "metrics": arts[1].id}
        assert store.find_cached_step("d" * 64) is None

    def test_find_cached_step_without_outputs_and_not_before(self, store: MetadataStore) -> None:
        run = make_run(store)
        step, _ = computed(store, run, end=10, outputs=())
        hit = store.find_cached_step(KEY)
        assert hit is not None and hit.step_run.id == step.id and hit.outputs == {}
        assert store.find_cached_step(KEY, not_before=at(10)) is not None
        assert store.find_cached_step(KEY, not_before=at(11)) is None

    def test_record_cached_step_points_to_original_artifacts_and_copies_metadata(self, store: MetadataStore) -> None:
        run1, run2 = make_run(store), make_run(store)
        original, arts = computed(store, run1)
        upstream = make_step(store, run2, "load")
        (data,) = finish(store, upstream, [artifact("output", uri="/a/data")])
        cached = store.record_cached_step(
            StepRunCreate(run_id=run2.id, name="train", cache_key=KEY, inputs={"data": data.id}, start_time=at(100)),
            cached_from_id=original.id,
            outputs={"model": arts[0].id},
        )
        assert cached.status is Status.CACHED and cached.cached_from_id == original.id
        assert cached.end_time == cached.start_time == at(100)
        assert store.get_step_run(cached.id) == cached
        edges = {(e.direction, e.name): e.artifact.id for e in store.list_step_io([cached.id])}
        assert edges == {(Direction.INPUT, "data"): data.id, (Direction.OUTPUT, "model"): arts[0].id}
        assert store.get_artifact(arts[0].id).producer_step_run_id == original.id  # not copied
        assert store.get_metadata(EntityKind.STEP_RUN, [cached.id]) == {cached.id: {"accuracy": 0.5}}
        # A cached step run is never itself a cache entry: look-ups keep finding the original.
        hit = store.find_cached_step(KEY)
        assert hit is not None and hit.step_run.id == original.id

    def test_record_cached_step_with_unknown_original_records_nothing(self, store: MetadataStore) -> None:
        run = make_run(store)
        with pytest.raises(CacheEntryGoneError, match=r"original step run '0{32}' no longer exists"):
            store.record_cached_step(
                StepRunCreate(run_id=run.id, name="train", cache_key=KEY), cached_from_id="0" * 32, outputs={}
            )
        assert store.list_step_runs(run.id) == []
        original, _ = computed(store, make_run(store))
        with pytest.raises(CacheEntryGoneError, match=r"output model='1{32}' no longer exists"):
            store.record_cached_step(
                StepRunCreate(run_id=run.id, name="train", cache_key=KEY),
                cached_from_id=original.id,
                outputs={"model": "1" * 32},
            )
        assert store.list_step_runs(run.id) == []
        # A missing run is not a vanished cache entry: executing the step would not help.
        with pytest.raises(NotFoundError) as raised:
            store.record_cached_step(
                StepRunCreate(run_id="2" * 32, name="train", cache_key=KEY), cached_from_id=original.id, outputs={}
            )
        assert not isinstance(raised.value, CacheEntryGoneError)

    def test_record_cached_step_whose_original_was_deleted_records_nothing(self, store: MetadataStore) -> None:
        """Another process deleted the cache entry's run between the look-up and the record.
        Skipped on stores that cannot delete runs (``delete_run`` raises ``UnsupportedOperationError``)."""
        first, second = make_run(store), make_run(store)
        original, arts = computed(store, first)
        hit = store.find_cached_step(KEY)
        assert hit is not None and hit.step_run.id == original.id
        try:
            store.delete_run(first.id)
        except UnsupportedOperationError:
            pytest.skip(f"{type(store).__name__} cannot delete runs")
        with pytest.raises(CacheEntryGoneError, match=f"original step run '{original.id}' no longer exists"):
            store.record_cached_step(
                StepRunCreate(run_id=second.id, name="train", cache_key=KEY),
                cached_from_id=original.id,
                outputs={"model": arts[0].id},
            )
        assert store.list_step_runs(second.id) == []
        assert store.integrity_problems() == []

    def test_invalidate_cache_filters_by_pipeline_and_step(self, store: MetadataStore) -> None:
        a, b = make_run(store, "alpha"), make_run(store, "beta")
        computed(store, a, "train", key="1" * 64)
        computed(store, a, "load", key="2" * 64)
        computed(store, b, "train", key="3" * 64)
        assert store.invalidate_cache(at=at(200), pipeline="alpha", step="train") == 1
        assert store.find_cached_step("1" * 64) is None
        assert store.find_cached_step("2" * 64) is not None and store.find_cached_step("3" * 64) is not None
        assert store.invalidate_cache(at=at(201), step="train") == 1  # beta's train
        assert store.invalidate_cache(at=at(202)) == 1  # alpha's load
        assert store.invalidate_cache(at=at(203)) == 0
        (step,) = [s for s in store.list_step_runs(a.id) if s.name == "train"]
        assert step.cache_invalidated_at == at(200)

    def test_list_cache_entries_filters_like_invalidate_cache(self, store: MetadataStore) -> None:
        assert store.list_cache_entries() == []
        a, b = make_run(store, "alpha"), make_run(store, "beta")
        train_a, _ = computed(store, a, "train", key="1" * 64, end=10)
        load_a, _ = computed(store, a, "load", key="2" * 64, end=20)
        train_b, _ = computed(store, b, "train", key="3" * 64, end=30)
        computed(store, b, "failed", key="4" * 64, end=40, status=Status.FAILED)  # not an entry
        no_key = make_step(store, b, "no_key")
        finish(store, no_key, end_time=at(50))  # not an entry either
        entries = store.list_cache_entries()
        assert [e.step_run_id for e in entries] == [train_b.id, load_a.id, train_a.id]  # newest first
        first = entries[0]
        assert (first.step_name, first.pipeline_name, first.run_name) == ("train", "beta", b.name)
        assert first.cache_key == "3" * 64 and first.created == at(30) and first.invalidated_at is None
        assert [e.step_run_id for e in store.list_cache_entries(pipeline="alpha")] == [load_a.id, train_a.id]
        assert [e.step_run_id for e in store.list_cache_entries(step="train")] == [train_b.id, train_a.id]
        assert [e.step_run_id for e in store.list_cache_entries(pipeline="alpha", step="train")] == [train_a.id]
        assert store.list_cache_entries(pipeline="nosuch") == []
        assert [e.step_run_id for e in store.list_cache_entries(limit=1)] == [train_b.id]

        assert store.invalidate_cache(at=at(200), step="train") == 2
        invalidated = store.list_cache_entries(invalidated=True)
        assert [(e.step_run_id, e.invalidated_at) for e in invalidated] == [
            (train_b.id, at(200)),
            (train_a.id, at(200)),
        ]
        assert [e.step_run_id for e in store.list_cache_entries(invalidated=False)] == [load_a.id]
        assert len(store.list_cache_entries()) == 3  # invalidated entries are still listed

    def test_latest_step_run_of_a_pipeline_before_a_time(self, store: MetadataStore) -> None:
        first, second = make_run(store, "alpha"), make_run(store, "alpha")
        other = make_run(store, "beta")
        older, _ = computed(store, first, end=10)
        newer, _ = computed(store, second, end=20)
        computed(store, other, end=30)
        assert store.latest_step_run("alpha", "train", before=at(100)).id == newer.id  # type: ignore[union-attr]
        assert store.latest_step_run("alpha", "train", before=at(19)).id == older.id  # type: ignore[union-attr]
        assert store.latest_step_run("alpha", "train", before=at(5)) is None
        assert store.latest_step_run("alpha", "evaluate", before=at(100)) is None

    def test_latest_step_run_passes_over_skipped_steps(self, store: MetadataStore) -> None:
        ran, skipped = make_run(store, "alpha"), make_run(store, "alpha")
        older, _ = computed(store, ran, end=10)
        not_run = make_step(store, skipped, "train", start_time=at(20))
        finish(store, not_run, status=Status.SKIPPED, end_time=at(20))
        assert store.get_step_run(not_run.id).status is Status.SKIPPED
        assert store.latest_step_run("alpha", "train", before=at(100)).id == older.id  # type: ignore[union-attr]
        assert store.find_cached_step(KEY).step_run.id == older.id  # type: ignore[union-attr]
