"""Runs and pipelines: create_run, finish_run, heartbeat, get/list/count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone

import pytest

from pipeledger.exceptions import NotFoundError, RunExistsError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import RunCreate, RunRecord, Status
from pipeledger.testing.helpers import T0, at, make_run


def _runs_at_known_times(store: MetadataStore) -> list[RunRecord]:
    """train-1..3 and serve-1..2 started a minute apart; serve-1 and train-2 failed."""
    plan = [("train", 0), ("serve", 60), ("train", 120), ("serve", 180), ("train", 240)]
    runs = [make_run(store, p, start_time=at(s)) for p, s in plan]
    for run in runs:
        status = Status.FAILED if run.name in ("serve-1", "train-2") else Status.COMPLETED
        store.finish_run(run.id, status, end_time=at(300))
    return runs


class RunsContract:
    """Runs and pipelines: ``create_run``, ``finish_run``, heartbeat, get/list/count."""

    # ----------------------------------------------------------------- create_run

    def test_create_run_creates_its_pipeline(self, store: MetadataStore) -> None:
        run = make_run(store, "train", pipeline_docstring="Trains a model.")

        pipeline = store.get_pipeline("train")
        assert pipeline.id == run.pipeline_id
        assert pipeline.name == run.pipeline_name == "train"
        assert pipeline.docstring == "Trains a model."
        assert pipeline.created_at.tzinfo is not None

    def test_second_run_reuses_the_pipeline(self, store: MetadataStore) -> None:
        first = make_run(store, "train")
        second = make_run(store, "train")

        assert second.pipeline_id == first.pipeline_id
        assert [p.name for p in store.list_pipelines()] == ["train"]

    def test_new_run_is_running(self, store: MetadataStore) -> None:
        run = make_run(store)

        assert run.status is Status.RUNNING
        assert run.end_time is None
        assert run.error is None

    def test_create_run_keeps_the_given_id_and_start_time(self, store: MetadataStore) -> None:
        request = RunCreate(pipeline_name="train", name="train-{n}", start_time=at(5))
        run = store.create_run(request)

        assert run.id == request.id
        assert store.get_run(request.id).start_time == at(5)

    def test_templated_names_are_numbered_per_pipeline(self, store: MetadataStore) -> None:
        names = [
            make_run(store, "train").name,
            make_run(store, "train").name,
            make_run(store, "serve").name,
            make_run(store, "train").name,
            make_run(store, "serve").name,
        ]

        assert names == ["train-1", "train-2", "serve-1", "train-3", "serve-2"]
        assert [r.number for r in store.list_runs(pipeline="train", newest_first=False)] == [1, 2, 3]

    def test_fixed_name_gets_a_number_too(self, store: MetadataStore) -> None:
        make_run(store, "train")
        run = make_run(store, "train", name="nightly")

        assert run.name == "nightly"
        assert run.number == 2

    def test_taken_fixed_name_raises_run_exists(self, store: MetadataStore) -> None:
        make_run(store, "train", name="nightly")

        with pytest.raises(RunExistsError, match="nightly"):
            make_run(store, "train", name="nightly")
        assert store.count_runs() == 1

    def test_run_names_are_unique_across_pipelines(self, store: MetadataStore) -> None:
        make_run(store, "train", name="nightly")

        with pytest.raises(RunExistsError):
            make_run(store, "serve", name="nightly")

    def test_failed_create_run_does_not_create_the_pipeline(self, store: MetadataStore) -> None:
        make_run(store, "train", name="nightly")

        with pytest.raises(RunExistsError):
            make_run(store, "serve", name="nightly")
        with pytest.raises(NotFoundError):
            store.get_pipeline("serve")

    def test_templated_name_skips_names_chosen_by_users(self, store: MetadataStore) -> None:
        make_run(store, "train", name="train-2")  # takes number 1 and the name of number 2
        run = make_run(store, "train")

        assert run.name == "train-3"
        assert run.number == 3

    def test_templated_name_placeholder_anywhere(self, store: MetadataStore) -> None:
        run = make_run(store, "train", name="run {n} of train")

        assert run.name == "run 1 of train"

    def test_concurrent_templated_runs_get_distinct_numbers(self, store: MetadataStore) -> None:
        with ThreadPoolExecutor(max_workers=6) as pool:
            runs = list(pool.map(lambda _: make_run(store, "train"), range(18)))

        assert sorted(r.number for r in runs) == list(range(1, 19))
        assert {r.name for r in runs} == {f"train-{n}" for n in range(1, 19)}

    def test_created_run_equals_get_run_by_name_and_by_id(self, store: MetadataStore) -> None:
        run = make_run(
            store,
            "train",
            parameters={"lr": 0.01},
            git_sha="a" * 40,
            git_dirty=True,
            code_hash="c" * 64,
        )

        assert store.get_run(run.name) == run
        assert store.get_run(run.id) == run

    def test_get_run_prefers_a_name_over_an_id(self, store: MetadataStore) -> None:
        first = make_run(store, "train")
        second = make_run(store, "train", name=first.id)

        assert store.get_run(first.id) == second

    @pytest.mark.parametrize("dirty", [True, False, None])
    def test_git_dirty_round_trips(self, store: MetadataStore, dirty: bool | None) -> None:
        run = make_run(store, git_dirty=dirty)

        assert store.get_run(run.id).git_dirty is dirty

    def test_json_fields_round_trip(self, store: MetadataStore) -> None:
        nested = {
            "int": 1,
            "float": 0.25,
            "whole_float": 1.0,
            "big": 2**53 + 1,
            "bool": False,
            "none": None,
            "list": [1, "two", [3.5, None], {"four": 4}],
            "dict": {"a": {"b": {"c": ["deep"]}}},
            "unicode": "Grüße, 日本語, 🚀",
            "clé": "é",
            "empty": {},
        }
        run = make_run(
            store,
            parameters={"lr": 0.001, "layers": [64, 32]},
            config={"steps": {"load": {"upstream": [], "parameters": nested}}},
            environment={"python": "3.11.7", "packages": {"numpy": "1.26.4"}},
            stack={"orchestrator": {"flavor": "local", "config": nested}},
        )

        fetched = store.get_run(run.id)
        assert type(fetched.config["steps"]["load"]["parameters"]["whole_float"]) is float
        assert fetched.parameters == {"lr": 0.001, "layers": [64, 32]}
        assert fetched.config == {"steps": {"load": {"upstream": [], "parameters": nested}}}
        assert fetched.environment == {"python": "3.11.7", "packages": {"numpy": "1.26.4"}}
        assert fetched.stack == {"orchestrator": {"flavor": "local", "config": nested}}

    def test_unicode_names_round_trip(self, store: MetadataStore) -> None:
        run = make_run(store, "entraînement-🚀", name="lauf-ü-{n}")

        assert store.get_run("lauf-ü-1") == run
        assert store.get_pipeline("entraînement-🚀").name == "entraînement-🚀"

    def test_timestamps_are_utc_and_microsecond_precise(self, store: MetadataStore) -> None:
        run = make_run(store, start_time=T0)

        fetched = store.get_run(run.id)
        assert fetched.start_time == T0
        assert fetched.start_time.microsecond == 123456
        assert fetched.start_time.utcoffset() == timedelta(0)

    def test_timestamps_in_other_zones_are_stored_as_the_same_instant(self, store: MetadataStore) -> None:
        paris = timezone(timedelta(hours=2))
        run = make_run(store, start_time=T0.astimezone(paris))

        fetched = store.get_run(run.id)
        assert fetched.start_time == T0
        assert fetched.start_time.utcoffset() == timedelta(0)
        assert fetched.start_time.hour == T0.hour

    # --------------------------------------------------------------- finish / heartbeat

    def test_finish_run_sets_status_end_time_and_error(self, store: MetadataStore) -> None:
        run = make_run(store, start_time=at(0))

        store.finish_run(run.id, Status.FAILED, end_time=at(90), error="ValueError: boom")

        fetched = store.get_run(run.id)
        assert fetched.status is Status.FAILED
        assert fetched.end_time == at(90)
        assert fetched.end_time.utcoffset() == timedelta(0)
        assert fetched.error == "ValueError: boom"

    def test_finish_run_completed_without_error(self, store: MetadataStore) -> None:
        run = make_run(store)

        store.finish_run(run.id, Status.COMPLETED, end_time=at(1))

        fetched = store.get_run(run.id)
        assert fetched.status is Status.COMPLETED
        assert fetched.error is None

    def test_finish_run_only_touches_its_run(self, store: MetadataStore) -> None:
        run = make_run(store)
        other = make_run(store)

        store.finish_run(run.id, Status.COMPLETED, end_time=at(1))

        assert store.get_run(other.id) == other

    def test_finish_run_twice_with_same_values_is_not_an_error(self, store: MetadataStore) -> None:
        run = make_run(store)

        store.finish_run(run.id, Status.COMPLETED, end_time=at(1))
        store.finish_run(run.id, Status.COMPLETED, end_time=at(1))  # no row *changes*

        assert store.get_run(run.id).status is Status.COMPLETED

    def test_finish_unknown_run_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-id"):
            store.finish_run("no-such-id", Status.COMPLETED, end_time=at(1))

    def test_long_error_text_round_trips(self, store: MetadataStore, request: pytest.FixtureRequest) -> None:
        run = make_run(store)
        error = "Traceback (most recent call last):\n" + "  File 'x.py', line 1\n" * 4000

        store.finish_run(run.id, Status.FAILED, end_time=at(1), error=error)

        assert store.get_run(run.id).error == error

    def test_heartbeat_updates_heartbeat_at(self, store: MetadataStore) -> None:
        run = make_run(store, start_time=at(0))

        store.heartbeat(run.id, at(30))

        fetched = store.get_run(run.id)
        assert fetched.heartbeat_at == at(30)
        assert fetched.status is Status.RUNNING

    # ----------------------------------------------------------------------- pipelines

    def test_list_pipelines_ordered_by_name(self, store: MetadataStore) -> None:
        for name in ["gamma", "alpha", "delta", "beta"]:
            make_run(store, name)

        assert [p.name for p in store.list_pipelines()] == ["alpha", "beta", "delta", "gamma"]

    def test_list_pipelines_pages(self, store: MetadataStore) -> None:
        for name in ["gamma", "alpha", "delta", "beta", "epsilon"]:
            make_run(store, name)

        assert [p.name for p in store.list_pipelines(limit=2)] == ["alpha", "beta"]
        assert [p.name for p in store.list_pipelines(limit=2, offset=2)] == ["delta", "epsilon"]
        assert [p.name for p in store.list_pipelines(limit=2, offset=4)] == ["gamma"]
        assert [p.name for p in store.list_pipelines(offset=3)] == ["epsilon", "gamma"]

    def test_list_pipelines_empty_store(self, store: MetadataStore) -> None:
        assert store.list_pipelines() == []

    def test_list_pipelines_returns_the_same_records_as_get_pipeline(self, store: MetadataStore) -> None:
        make_run(store, "train", pipeline_docstring="doc")

        assert store.list_pipelines() == [store.get_pipeline("train")]

    def test_get_unknown_pipeline_names_it_and_lists_known_ones(self, store: MetadataStore) -> None:
        make_run(store, "train")
        make_run(store, "serve")

        with pytest.raises(NotFoundError) as caught:
            store.get_pipeline("predict")

        message = str(caught.value)
        assert "predict" in message
        assert "train" in message
        assert "serve" in message

    def test_get_pipeline_on_empty_store_says_nothing_is_recorded(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match="train"):
            store.get_pipeline("train")

    def test_not_found_error_is_a_key_error(self, store: MetadataStore) -> None:
        with pytest.raises(KeyError):
            store.get_pipeline("missing")
        with pytest.raises(KeyError):
            store.get_run("missing")

    def test_get_unknown_run_names_it_and_lists_latest_runs(self, store: MetadataStore) -> None:
        make_run(store, "train")

        with pytest.raises(NotFoundError) as caught:
            store.get_run("train-9")

        message = str(caught.value)
        assert "train-9" in message
        assert "train-1" in message

    # ----------------------------------------------------------------- list/count runs

    def test_list_runs_newest_first_by_default(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        names = [r.name for r in store.list_runs()]
        assert names == ["train-3", "serve-2", "train-2", "serve-1", "train-1"]

    def test_list_runs_oldest_first(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        names = [r.name for r in store.list_runs(newest_first=False)]
        assert names == ["train-1", "serve-1", "train-2", "serve-2", "train-3"]

    def test_list_runs_orders_by_start_time_not_creation_order(self, store: MetadataStore) -> None:
        make_run(store, name="late", start_time=at(100))
        make_run(store, name="early", start_time=at(10))

        assert [r.name for r in store.list_runs()] == ["late", "early"]
        assert [r.name for r in store.list_runs(newest_first=False)] == ["early", "late"]

    def test_list_runs_filters_by_pipeline(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        assert [r.name for r in store.list_runs(pipeline="serve")] == ["serve-2", "serve-1"]
        assert store.list_runs(pipeline="unknown") == []

    @pytest.mark.parametrize("status", [Status.FAILED, "failed"])
    def test_list_runs_filters_by_status(self, store: MetadataStore, status: Status | str) -> None:
        _runs_at_known_times(store)

        assert [r.name for r in store.list_runs(status=status)] == ["train-2", "serve-1"]

    def test_list_runs_filters_by_since_inclusive(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        assert [r.name for r in store.list_runs(since=at(120))] == ["train-3", "serve-2", "train-2"]

    def test_list_runs_since_in_another_zone(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)
        since = at(121).astimezone(timezone(timedelta(hours=-5)))

        assert [r.name for r in store.list_runs(since=since)] == ["train-3", "serve-2"]

    def test_list_runs_combines_filters(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        found = store.list_runs(pipeline="train", status=Status.COMPLETED, since=at(1))
        assert [r.name for r in found] == ["train-3"]

    def test_list_runs_returns_full_records(self, store: MetadataStore) -> None:
        runs = _runs_at_known_times(store)

        assert store.list_runs(pipeline="train", newest_first=False) == [
            store.get_run(r.id) for r in runs if r.pipeline_name == "train"
        ]

    @pytest.mark.parametrize("newest_first", [True, False])
    def test_list_runs_pages_cover_every_run_once(self, store: MetadataStore, newest_first: bool) -> None:
        runs = [make_run(store, start_time=at(i // 2)) for i in range(7)]  # pairs share a start time

        pages = [store.list_runs(limit=3, offset=offset, newest_first=newest_first) for offset in range(0, 9, 3)]

        assert [len(p) for p in pages] == [3, 3, 1]
        paged = [r.id for page in pages for r in page]
        assert paged == [r.id for r in store.list_runs(newest_first=newest_first)]
        assert sorted(paged) == sorted(r.id for r in runs)

    def test_list_runs_offset_without_limit(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        assert [r.name for r in store.list_runs(offset=3)] == ["serve-1", "train-1"]

    def test_count_runs_matches_list_runs(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        assert store.count_runs() == 5
        assert store.count_runs(pipeline="train") == 3
        assert store.count_runs(status=Status.FAILED) == 2
        assert store.count_runs(status="completed") == 3
        assert store.count_runs(pipeline="serve", status=Status.COMPLETED) == 1
        assert store.count_runs(pipeline="unknown") == 0
        for pipeline in (None, "train", "serve"):
            for status in (None, Status.FAILED, Status.COMPLETED, Status.RUNNING):
                expected = len(store.list_runs(pipeline=pipeline, status=status))
                assert store.count_runs(pipeline=pipeline, status=status) == expected

    def test_count_runs_on_empty_store(self, store: MetadataStore) -> None:
        assert store.count_runs() == 0

    def test_start_times_are_utc(self, store: MetadataStore) -> None:
        _runs_at_known_times(store)

        assert all(r.start_time.tzinfo is not None for r in store.list_runs())
        assert all(r.start_time.utcoffset() == timedelta(0) for r in store.list_runs())

    def test_list_run_names_matches_list_runs(self, store: MetadataStore) -> None:
        for pipeline in ("a", "b", "a", "a"):
            make_run(store, pipeline)
        for kwargs in ({}, {"pipeline": "a"}, {"pipeline": "a", "limit": 2, "offset": 1}, {"newest_first": False}):
            assert store.list_run_names(**kwargs) == [r.name for r in store.list_runs(**kwargs)]
