"""Key/value metadata: put_metadata and get_metadata."""

from __future__ import annotations

import pytest

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import EntityKind, new_id
from pipeledger.testing.helpers import artifact, finish, make_run, make_step, produce

JSON_VALUES = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": -42,
    "big_int": 2**53 + 1,
    "float": 0.1,
    "whole_float": 1.0,
    "negative_float": -2.5e10,
    "tiny_float": 1.5e-300,
    "string": "hello",
    "empty_string": "",
    "string_null": "null",
    "numeric_string": "123",
    "unicode": "naïve café, 北京, 🚀",
    "list": [1, "two", None, True, [3.25]],
    "empty_list": [],
    "dict": {"nested": {"deeper": [{"x": 1}]}, "ключ": "значение"},
    "empty_dict": {},
}


class MetadataContract:
    """Key/value metadata: ``put_metadata`` and ``get_metadata``."""

    @pytest.mark.parametrize("key", sorted(JSON_VALUES))
    def test_every_json_type_round_trips(self, store: MetadataStore, key: str) -> None:
        run = make_run(store)
        store.put_metadata(EntityKind.RUN, run.id, {key: JSON_VALUES[key]})

        value = store.get_metadata(EntityKind.RUN, [run.id])[run.id][key]
        assert value == JSON_VALUES[key]
        assert type(value) is type(JSON_VALUES[key])

    def test_all_json_types_in_one_call(self, store: MetadataStore) -> None:
        _, (out,) = produce(store, make_run(store))
        store.put_metadata(EntityKind.ARTIFACT, out.id, JSON_VALUES)

        assert store.get_metadata(EntityKind.ARTIFACT, [out.id]) == {out.id: JSON_VALUES}

    def test_json_types_round_trip_through_finish_step(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        output = artifact("out", metadata=JSON_VALUES)

        finish(store, step, [output], metadata=JSON_VALUES)

        assert store.get_metadata(EntityKind.STEP_RUN, [step.id]) == {step.id: JSON_VALUES}
        assert store.get_metadata(EntityKind.ARTIFACT, [output.id]) == {output.id: JSON_VALUES}

    def test_put_metadata_on_a_recorded_run(self, store: MetadataStore) -> None:
        run = make_run(store)

        store.put_metadata(EntityKind.RUN, run.id, {"accuracy": 0.91, "notes": "baseline"})

        assert store.get_metadata(EntityKind.RUN, [run.id]) == {run.id: {"accuracy": 0.91, "notes": "baseline"}}

    def test_put_metadata_replaces_existing_keys_and_keeps_others(self, store: MetadataStore) -> None:
        run = make_run(store)
        store.put_metadata(EntityKind.RUN, run.id, {"loss": 0.9, "epochs": 10, "tag": "a"})

        store.put_metadata(EntityKind.RUN, run.id, {"loss": 0.3, "tag": None, "new": [1]})

        assert store.get_metadata(EntityKind.RUN, [run.id]) == {
            run.id: {"loss": 0.3, "epochs": 10, "tag": None, "new": [1]}
        }

    def test_put_metadata_with_no_values_records_nothing(self, store: MetadataStore) -> None:
        run = make_run(store)

        store.put_metadata(EntityKind.RUN, run.id, {})

        assert store.get_metadata(EntityKind.RUN, [run.id]) == {}

    def test_put_metadata_with_many_keys(self, store: MetadataStore) -> None:
        run = make_run(store)
        values = {f"metric_{i:04d}": i / 7 for i in range(1200)}

        store.put_metadata(EntityKind.RUN, run.id, values)
        store.put_metadata(EntityKind.RUN, run.id, values)  # replacing every key at once

        assert store.get_metadata(EntityKind.RUN, [run.id]) == {run.id: values}

    def test_get_metadata_groups_by_entity(self, store: MetadataStore) -> None:
        run = make_run(store)
        s1, s2 = make_step(store, run, "s1"), make_step(store, run, "s2")
        store.put_metadata(EntityKind.STEP_RUN, s1.id, {"a": 1, "b": 2})
        store.put_metadata(EntityKind.STEP_RUN, s2.id, {"a": 3})

        assert store.get_metadata(EntityKind.STEP_RUN, [s1.id, s2.id]) == {
            s1.id: {"a": 1, "b": 2},
            s2.id: {"a": 3},
        }

    def test_get_metadata_omits_entities_without_metadata(self, store: MetadataStore) -> None:
        r1, r2, r3 = make_run(store), make_run(store), make_run(store)
        store.put_metadata(EntityKind.RUN, r1.id, {"a": 1})

        result = store.get_metadata(EntityKind.RUN, [r1.id, r2.id, r3.id, "no-such-run"])

        assert result == {r1.id: {"a": 1}}

    def test_get_metadata_returns_only_the_requested_entities(self, store: MetadataStore) -> None:
        r1, r2 = make_run(store), make_run(store)
        store.put_metadata(EntityKind.RUN, r1.id, {"a": 1})
        store.put_metadata(EntityKind.RUN, r2.id, {"b": 2})

        assert store.get_metadata(EntityKind.RUN, [r2.id]) == {r2.id: {"b": 2}}

    def test_get_metadata_of_nothing_is_empty(self, store: MetadataStore) -> None:
        assert store.get_metadata(EntityKind.RUN, []) == {}

    def test_metadata_kinds_are_separate(self, store: MetadataStore) -> None:
        run = make_run(store)
        shared_id = run.id
        finish(store, make_step(store, run), [artifact("out", id=shared_id)])
        store.put_metadata(EntityKind.RUN, shared_id, {"owner": "run"})
        store.put_metadata(EntityKind.ARTIFACT, shared_id, {"owner": "artifact"})

        assert store.get_metadata(EntityKind.RUN, [shared_id]) == {shared_id: {"owner": "run"}}
        assert store.get_metadata(EntityKind.ARTIFACT, [shared_id]) == {shared_id: {"owner": "artifact"}}
        assert store.get_metadata(EntityKind.STEP_RUN, [shared_id]) == {}

    def test_put_metadata_only_touches_its_entity(self, store: MetadataStore) -> None:
        r1, r2 = make_run(store), make_run(store)
        store.put_metadata(EntityKind.RUN, r1.id, {"k": 1})
        store.put_metadata(EntityKind.RUN, r2.id, {"k": 2})

        store.put_metadata(EntityKind.RUN, r1.id, {"k": 10})

        assert store.get_metadata(EntityKind.RUN, [r1.id, r2.id]) == {r1.id: {"k": 10}, r2.id: {"k": 2}}

    def test_get_metadata_with_more_than_500_ids(self, store: MetadataStore) -> None:
        step = make_step(store, make_run(store))
        outputs = [artifact(f"part_{i}", metadata={"index": i}) for i in range(1201)]
        finish(store, step, outputs)

        result = store.get_metadata(EntityKind.ARTIFACT, [o.id for o in outputs])

        assert result == {o.id: {"index": i} for i, o in enumerate(outputs)}

    def test_get_metadata_with_more_than_500_ids_some_without_metadata(self, store: MetadataStore) -> None:
        runs = [make_run(store) for _ in range(3)]
        ids = [runs[0].id, *(new_id() for _ in range(600)), runs[1].id, *(new_id() for _ in range(600))]
        ids.append(runs[2].id)  # the three runs land in the 1st, 2nd and 3rd chunk of 500
        for i, run in enumerate(runs):
            store.put_metadata(EntityKind.RUN, run.id, {"index": i})

        result = store.get_metadata(EntityKind.RUN, ids)

        assert result == {run.id: {"index": i} for i, run in enumerate(runs)}

    def test_get_metadata_with_repeated_ids(self, store: MetadataStore) -> None:
        run = make_run(store)
        store.put_metadata(EntityKind.RUN, run.id, {"a": 1})

        assert store.get_metadata(EntityKind.RUN, [run.id, run.id]) == {run.id: {"a": 1}}
