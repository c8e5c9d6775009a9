"""Contract: every pipeline belongs to a project, and reads restricted to projects see only theirs.

A store that keeps every pipeline in ``default`` (ML Metadata) refuses a run in another project
with :class:`~pipeledger.exceptions.UnsupportedOperationError`: those tests are skipped for it,
and the restriction tests check that a restriction without ``default`` sees nothing.
"""

from __future__ import annotations

import pytest

from pipeledger.exceptions import ConflictError, NotFoundError, UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import DEFAULT_PROJECT, EntityKind, RunRecord, Status, StepRunCreate
from pipeledger.testing.helpers import artifact, at, finish, make_run, make_step

KEY = "d" * 64


def run_in(store: MetadataStore, project: str, pipeline: str) -> RunRecord:
    """A run of ``pipeline`` in ``project``; skips the test on a store that has only ``default``."""
    try:
        return make_run(store, pipeline, project=project, start_time=at(len(pipeline)))
    except UnsupportedOperationError as exc:
        if project == DEFAULT_PROJECT:
            raise
        pytest.skip(f"this store keeps every pipeline in {DEFAULT_PROJECT!r}: {exc}")


def cached_step(store: MetadataStore, run: RunRecord, end: float) -> None:
    """A completed step run of ``run`` with cache key ``KEY`` and one output."""
    step = make_step(store, run, "train", cache_key=KEY, start_time=at(end - 1))
    finish(store, step, [artifact("model", uri=f"/a/{run.name}/model")], end_time=at(end), metadata={"acc": end})


class ProjectsContract:
    """Projects on pipelines and runs, and the ``projects`` restriction of reads."""

    def test_a_pipeline_is_in_the_default_project_unless_created_in_another(self, store: MetadataStore) -> None:
        run = make_run(store, "plain")
        assert run.project == DEFAULT_PROJECT
        assert store.get_pipeline("plain").project == DEFAULT_PROJECT
        assert store.get_run(run.id).project == DEFAULT_PROJECT

    def test_a_new_pipeline_is_created_in_the_run_s_project(self, store: MetadataStore) -> None:
        run = run_in(store, "ml", "train")
        assert run.project == "ml"
        assert store.get_pipeline("train").project == "ml"
        assert store.get_run(run.name).project == "ml"
        assert [r.project for r in store.list_runs()] == ["ml"]
        assert store.list_pipelines()[0].project == "ml"

    def test_a_run_of_a_pipeline_in_another_project_is_refused_naming_it(self, store: MetadataStore) -> None:
        run_in(store, "ml", "train")
        with pytest.raises(ConflictError, match=r"pipeline 'train' belongs to project 'ml', not 'default'"):
            make_run(store, "train")
        assert store.count_runs() == 1

    def test_lists_and_counts_see_only_the_given_projects(self, store: MetadataStore) -> None:
        ml = run_in(store, "ml", "train")
        make_run(store, "etl", start_time=at(1))
        assert [p.name for p in store.list_pipelines(projects=["ml"])] == ["train"]
        assert [p.name for p in store.list_pipelines(projects=[])] == []
        assert [r.id for r in store.list_runs(projects=["ml"])] == [ml.id]
        assert store.list_run_names(projects=["ml"]) == [ml.name]
        assert store.count_runs(projects=["ml"]) == 1
        assert store.count_runs(projects=["ml", DEFAULT_PROJECT]) == 2
        assert store.count_runs(projects=["other"]) == 0
        assert len(store.list_runs()) == 2  # None: every project

    def test_look_ups_outside_the_projects_answer_not_found_without_naming_others(self, store: MetadataStore) -> None:
        ml = run_in(store, "ml", "secret-pipeline")
        make_run(store, "etl", start_time=at(1))
        with pytest.raises(NotFoundError) as pipeline_error:
            store.get_pipeline("secret-pipeline", projects=[DEFAULT_PROJECT])
        assert "secret" not in str(pipeline_error.value).replace("'secret-pipeline'", "", 1)
        with pytest.raises(NotFoundError) as run_error:
            store.get_run(ml.name, projects=[DEFAULT_PROJECT])
        assert str(run_error.value).count("secret") == 1  # the name asked for, no other
        assert store.get_run(ml.id, projects=["ml"]).id == ml.id
        with pytest.raises(NotFoundError) as view_error:
            store.get_run_steps(ml.name, projects=[DEFAULT_PROJECT])
        assert str(view_error.value).count("secret") == 1
        assert store.get_run_steps(ml.id, projects=["ml"]).run.id == ml.id

    def test_cache_look_ups_never_cross_into_other_projects(self, store: MetadataStore) -> None:
        cached_step(store, run_in(store, "ml", "train"), 50)
        cached_step(store, make_run(store, "etl", start_time=at(2)), 10)
        hit = store.find_cached_step(KEY, projects=[DEFAULT_PROJECT])
        assert hit is not None and hit.run_name.startswith("etl")
        ml_hit = store.find_cached_step(KEY, projects=["ml"])
        assert ml_hit is not None and ml_hit.run_name.startswith("train")
        assert store.find_cached_step(KEY, projects=["other"]) is None
        assert store.find_cached_step(KEY, not_before=at(0), projects=[]) is None
        assert [e.pipeline_name for e in store.list_cache_entries(projects=["ml"])] == ["train"]
        assert store.invalidate_cache(at=at(100), projects=[DEFAULT_PROJECT]) == 1
        assert store.find_cached_step(KEY, projects=[DEFAULT_PROJECT]) is None
        assert store.find_cached_step(KEY, projects=["ml"]) is not None

    def test_histories_and_artifacts_see_only_the_given_projects(self, store: MetadataStore) -> None:
        ml = run_in(store, "ml", "train")
        cached_step(store, ml, 50)
        assert store.metric_history("train", projects=["ml"])
        assert store.metric_history("train", projects=[DEFAULT_PROJECT]) == []
        assert store.latest_step_run("train", "train", before=at(100), projects=["ml"]) is not None
        assert store.latest_step_run("train", "train", before=at(100), projects=[DEFAULT_PROJECT]) is None
        assert [a.uri for batch in store.iter_artifacts(projects=["ml"]) for a in batch] == [f"/a/{ml.name}/model"]
        assert [a for batch in store.iter_artifacts(projects=[DEFAULT_PROJECT]) for a in batch] == []

    def test_an_artifact_belongs_to_the_projects_of_the_steps_that_used_it(self, store: MetadataStore) -> None:
        ml = run_in(store, "ml", "train")
        step = make_step(store, ml, "make")
        (model,) = finish(store, step, [artifact("model")])
        etl = make_run(store, "etl", start_time=at(3))
        store.start_step(StepRunCreate(run_id=etl.id, name="use", inputs={"model": model.id}))
        for project in ("ml", DEFAULT_PROJECT):
            assert [a.id for batch in store.iter_artifacts(projects=[project]) for a in batch] == [model.id]
        assert [a for batch in store.iter_artifacts(projects=["other"]) for a in batch] == []

    def test_searches_see_only_the_given_projects_and_filter_by_project(self, store: MetadataStore) -> None:
        ml = run_in(store, "ml", "train")
        make_run(store, "etl", start_time=at(1))
        try:
            page = store.search("run", "project = 'ml'")
        except UnsupportedOperationError:
            pytest.skip("this store's search cannot filter by project")
        assert [r.id for r in page.items] == [ml.id]
        assert [r.id for r in store.search("run", projects=["ml"]).items] == [ml.id]
        assert store.search("run", projects=["other"]).items == []
        step = make_step(store, ml, "load")
        finish(store, step, [artifact("data")], status=Status.COMPLETED)
        assert [s.id for s in store.search("step", "project = 'ml'").items] == [step.id]
        assert store.search("step", projects=[DEFAULT_PROJECT]).items == []
        assert len(store.search("artifact", "project = 'ml'").items) == 1
        assert store.search("artifact", projects=[DEFAULT_PROJECT]).items == []
        store.add_tags(EntityKind.RUN, ml.id, ["keep"])
        assert store.search("run", "tag = 'keep'", projects=[DEFAULT_PROJECT]).items == []

    def test_a_restriction_to_other_projects_sees_nothing_of_default(self, store: MetadataStore) -> None:
        """Every store, ML Metadata too: records of ``default`` are outside ``projects=["other"]``
        and inside ``projects=["default"]``."""
        run = make_run(store, "etl", start_time=at(1))
        cached_step(store, run, 10)
        other, default = ["other"], [DEFAULT_PROJECT]
        assert store.list_pipelines(projects=other) == [] and len(store.list_pipelines(projects=default)) == 1
        assert store.list_runs(projects=other) == [] and len(store.list_runs(projects=default)) == 1
        assert store.list_run_names(projects=other) == [] and store.count_runs(projects=other) == 0
        assert store.find_cached_step(KEY, projects=other) is None
        assert store.find_cached_step(KEY, projects=default) is not None
        assert store.list_cache_entries(projects=other) == []
        assert store.metric_history("etl", projects=other) == []
        assert store.metric_history("etl", projects=default)
        assert store.latest_step_run("etl", "train", before=at(100), projects=other) is None
        assert [a for batch in store.iter_artifacts(projects=other) for a in batch] == []
        assert store.search("run", projects=other).items == []
        assert [r.id for r in store.search("run", projects=default).items] == [run.id]
        assert store.invalidate_cache(at=at(50), projects=other) == 0
        with pytest.raises(NotFoundError):
            store.get_run(run.name, projects=other)
        with pytest.raises(NotFoundError):
            store.get_pipeline("etl", projects=other)
        assert store.get_run(run.name, projects=default).id == run.id

    def test_projects_of_names_each_object_s_projects(self, store: MetadataStore) -> None:
        etl = make_run(store, "etl", start_time=at(1))
        make = make_step(store, etl, "make")
        (made,) = finish(store, make, [artifact("data")])
        external = store.register_artifact(artifact("ext"), at=at(2))
        assert store.projects_of("pipeline", ["etl", "nope"]) == {"etl": [DEFAULT_PROJECT]}
        assert store.projects_of("run", [etl.id, etl.name, "nope"]) == {
            etl.id: [DEFAULT_PROJECT],
            etl.name: [DEFAULT_PROJECT],
        }
        assert store.projects_of("step_run", [make.id, "0" * 32]) == {make.id: [DEFAULT_PROJECT]}
        assert store.projects_of("artifact", [made.id, external.id, "0" * 32]) == {
            made.id: [DEFAULT_PROJECT],
            external.id: [],  # no step run touched it
        }
        ml = run_in(store, "ml", "train")
        store.start_step(StepRunCreate(run_id=ml.id, name="use", inputs={"data": made.id}))
        assert store.projects_of("artifact", [made.id]) == {made.id: [DEFAULT_PROJECT, "ml"]}
        with pytest.raises(ValueError, match="unknown kind"):
            store.projects_of("planet", ["x"])
