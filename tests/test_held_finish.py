"""The sequential orchestrator records a completed step's end with the next step's start
(``MetadataStore.finish_and_start``): S + 1 step writes per run of S steps instead of 2S, and
the records are exactly those of one write per start and per finish (the orchestrator
differential and crash tests compare them); here, the number of writes and the cases that
must flush a held end first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeledger import Client, pipeline, step
from pipeledger.stack.registry import get_stack
from tests import pipelines as P

WRITES = ("start_step", "finish_step", "finish_and_start", "record_cached_step")


@pytest.fixture
def writes(home: Path) -> Iterator[Counter[str]]:
    """Counts of the step writes the active stack's metadata store receives."""
    store = get_stack().metadata_store
    counted: Counter[str] = Counter()
    for name in WRITES:
        method = getattr(store, name)

        def spy(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            counted[_name] += 1
            return _method(*args, **kwargs)

        setattr(store, name, spy)
    yield counted
    for name in WRITES:
        delattr(store, name)


def test_a_run_of_s_steps_writes_s_plus_one_times(writes: Counter[str]) -> None:
    run = P.training.with_options(enable_cache=False)(lr=0.3)  # load, train, evaluate

    assert writes == {"start_step": 1, "finish_and_start": 2, "finish_step": 1}
    shown = Client().get_run(run.name)
    assert [s.status.value for s in shown] == ["completed"] * 3
    assert shown["train"].inputs["data"].id == shown["load"].output.id
    assert shown["train"].record.end_time is not None and shown["evaluate"].record.end_time is not None


def test_a_cache_hit_after_a_held_end_records_both(writes: Counter[str]) -> None:
    P.training(lr=0.3)
    writes.clear()
    changed = P.training(lr=0.4)  # load is a cache hit, train and evaluate run

    assert writes == {"record_cached_step": 1, "start_step": 1, "finish_and_start": 1, "finish_step": 1}
    assert [s.status.value for s in Client().get_run(changed.name)] == ["cached", "completed", "completed"]


@step
def double(value: int = 1) -> int:
    return value * 2


@pipeline(name="the same step twice")
def twice() -> None:
    double(value=1)
    double(value=1)  # the same step with the same parameters: its cache entry is the held one


def test_the_same_step_twice_reuses_the_held_result(writes: Counter[str]) -> None:
    run = twice()

    statuses = {s.name: s.status.value for s in Client().get_run(run.name)}
    assert sorted(statuses.values()) == ["cached", "completed"], statuses
    assert writes["record_cached_step"] == 1


def test_the_same_step_twice_without_caching_keeps_the_end_held(writes: Counter[str]) -> None:
    """Nothing is looked up (caching off, or a refresh), so the held end is not flushed for the
    look-up: both steps run, and the run writes S + 1 times."""
    for options in ({"enable_cache": False}, {"refresh_cache": True}):
        writes.clear()
        run = twice.with_options(**options)()

        assert writes == {"start_step": 1, "finish_and_start": 1, "finish_step": 1}, options
        shown = Client().get_run(run.name)
        assert [s.status.value for s in shown] == ["completed", "completed"]
        assert all(s.record.end_time is not None for s in shown)
