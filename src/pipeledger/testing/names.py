"""Names with characters query languages treat specially are found like any other, by every lookup."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import Status
from pipeledger.testing.helpers import at, finish, make_run, make_step

NAMES = ["C:\\pipes\\train", "it's", 'say "hi"', "100%_done", "naïve 数据", "back\\'slash"]


class NamesContract:
    """Names with characters query languages treat specially are found like any other."""

    @pytest.mark.parametrize("name", NAMES)
    def test_pipeline_and_step_names_with_special_characters(self, store: MetadataStore, name: str) -> None:
        make_run(store, "other")
        run = make_run(store, name, start_time=at(0))
        step = make_step(store, run, name, cache_key="k" * 64, start_time=at(1))
        finish(store, step, metadata={"accuracy": 0.5})
        second = make_run(store, name, start_time=at(10))

        assert second.number == 2
        assert store.get_pipeline(name).name == name
        assert [r.id for r in store.list_runs(pipeline=name)] == [second.id, run.id]
        assert store.count_runs(pipeline=name) == 2
        assert store.list_run_names(pipeline=name, newest_first=False) == [run.name, second.name]
        assert [(p.step_name, p.value) for p in store.metric_history(name)] == [(name, 0.5)]
        assert store.latest_step_run(name, name, before=at(100)).id == step.id  # type: ignore[union-attr]
        assert store.invalidate_cache(at=at(50), pipeline=name, step=name) == 1
        assert store.find_cached_step("k" * 64) is None

    def test_concurrent_runs_with_fixed_names_get_distinct_numbers(self, store: MetadataStore) -> None:
        with ThreadPoolExecutor(max_workers=6) as pool:
            runs = list(pool.map(lambda i: make_run(store, "train", name=f"fixed-{i}"), range(12)))

        assert sorted(r.number for r in runs) == list(range(1, 13))
        assert all(r.status is Status.RUNNING for r in runs)
