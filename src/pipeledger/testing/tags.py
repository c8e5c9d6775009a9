"""Tags: ``add_tags``, ``remove_tags``, ``change_tags``, ``get_tags`` and run records' ``tags``."""

from __future__ import annotations

import pytest

from pipeledger.exceptions import DefinitionError, NotFoundError, UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind, Status
from pipeledger.testing.helpers import artifact, at, make_run, make_step


class TagsContract:
    """Tags of runs, step runs and artifacts, editable after the fact. A store that keeps tags of
    runs only raises ``UnsupportedOperationError`` for the others (those tests are skipped)."""

    def test_run_tags_given_at_creation_are_read_back_sorted_and_distinct(self, store: MetadataStore) -> None:
        run = make_run(store, tags=["prod", "exp:1", "prod"])

        assert run.tags == ["exp:1", "prod"]
        assert store.get_run(run.id).tags == ["exp:1", "prod"]
        assert store.list_runs()[0].tags == ["exp:1", "prod"]
        assert store.get_tags(EntityKind.RUN, [run.id]) == {run.id: ["exp:1", "prod"]}

    def test_add_and_remove_run_tags(self, store: MetadataStore) -> None:
        run = make_run(store, tags=["candidate"])
        other = make_run(store)

        store.add_tags(EntityKind.RUN, run.id, ["prod", "candidate", "owner:ana"])
        store.remove_tags(EntityKind.RUN, run.id, ["candidate", "never-there"])

        assert store.get_run(run.id).tags == ["owner:ana", "prod"]
        assert store.get_run(other.id).tags == []
        assert store.get_tags(EntityKind.RUN, [run.id, other.id]) == {run.id: ["owner:ana", "prod"]}

    def test_change_tags_adds_and_removes_in_one_call(self, store: MetadataStore) -> None:
        run = make_run(store, tags=["candidate", "keep"])

        store.change_tags(EntityKind.RUN, run.id, add=["prod"], remove=["candidate"])

        assert store.get_run(run.id).tags == ["keep", "prod"]

    def test_tags_breaking_the_name_rules_are_refused_and_nothing_changes(self, store: MetadataStore) -> None:
        run = make_run(store, tags=["a"])

        for bad in ["", " padded", "tab\there", "x" * 256, "+plus", "-minus", "nul\x00"]:
            with pytest.raises(DefinitionError):
                store.add_tags(EntityKind.RUN, run.id, ["fine", bad])
        assert store.get_run(run.id).tags == ["a"]

    def test_quotes_and_unicode_are_fine_in_tags(self, store: MetadataStore) -> None:
        run = make_run(store)
        tags = ["it's", 'say "hi"', "drop table runs; --", "日本語", "émoji 🚀"]

        store.add_tags(EntityKind.RUN, run.id, tags)

        assert store.get_run(run.id).tags == sorted(tags)

    def test_tagging_a_missing_run_raises_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError):
            store.add_tags(EntityKind.RUN, "0" * 32, ["prod"])

    def test_step_run_and_artifact_tags(self, store: MetadataStore) -> None:
        run = make_run(store)
        step = make_step(store, run, "train")
        (model,) = store.finish_step(step.id, Status.COMPLETED, end_time=at(1), outputs=[artifact("model")])
        try:
            store.add_tags(EntityKind.STEP_RUN, step.id, ["slow", "gpu"])
        except UnsupportedOperationError:
            pytest.skip(f"the {store.flavor} store keeps tags of runs only")
        store.add_tags(EntityKind.ARTIFACT, model.id, ["golden"])
        store.remove_tags(EntityKind.STEP_RUN, step.id, ["slow"])

        assert store.get_tags(EntityKind.STEP_RUN, [step.id]) == {step.id: ["gpu"]}
        assert store.get_tags(EntityKind.ARTIFACT, [model.id]) == {model.id: ["golden"]}
        assert store.get_run(run.id).tags == []  # kinds do not mix
        with pytest.raises(NotFoundError):
            store.add_tags(EntityKind.STEP_RUN, "0" * 32, ["x"])
        with pytest.raises(NotFoundError):
            store.add_tags(EntityKind.ARTIFACT, "0" * 32, ["x"])

    def test_deleting_a_run_deletes_its_tags(self, store: MetadataStore) -> None:
        run = make_run(store, tags=["prod"])
        step = make_step(store, run, "train")
        store.finish_step(step.id, Status.COMPLETED, end_time=at(1))
        try:
            store.add_tags(EntityKind.STEP_RUN, step.id, ["gpu"])
            store.delete_run(run.id)
        except UnsupportedOperationError:
            pytest.skip(f"the {store.flavor} store cannot delete runs or tag step runs")

        assert store.get_tags(EntityKind.RUN, [run.id]) == {}
        assert store.get_tags(EntityKind.STEP_RUN, [step.id]) == {}
