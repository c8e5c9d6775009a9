"""Contract: artifacts registered from outside (no producer) are recorded, consumable and traced."""

from __future__ import annotations

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind, StepRunCreate
from pipeledger.testing.helpers import artifact, at, finish, make_run


class RegisterArtifactContract:
    """Artifacts registered from outside (no producer) are recorded, consumable and traced."""

    def test_registered_artifact_has_no_producer_and_can_be_consumed(self, store: MetadataStore) -> None:
        raw = store.register_artifact(artifact("ignored", uri="/data/raw.csv", metadata={"rows": 10}), at=at(0))
        assert raw.producer_step_run_id is None and raw.created_at == at(0)
        assert store.get_artifact(raw.id) == raw
        assert store.get_metadata(EntityKind.ARTIFACT, [raw.id]) == {raw.id: {"rows": 10}}
        run = make_run(store)
        step = store.start_step(StepRunCreate(run_id=run.id, name="load", inputs={"raw": raw.id}))
        (out,) = finish(store, step, [artifact("output", uri="/a/out")])
        graph = store.lineage(artifact_id=out.id)
        assert set(graph.artifacts) == {raw.id, out.id} and set(graph.steps) == {step.id}
