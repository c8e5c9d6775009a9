"""OpenLineage's published JSON schemas as a validator for the events pipeledger exports.

The schemas (core spec 2-0-2 and the standard facets) are data shared by the project's
sessions, in ``../shared/openlineage-spec/`` next to the repository (or
``$PIPELEDGER_OPENLINEAGE_SPEC``); their README says how to validate: JSON Schema Draft
2020-12 with format checks on, a local ``referencing`` registry keyed by each file's
``$id`` (nothing is fetched), and each facet against its own schema, since the core
schema checks only the base facet shape.

Format checks are the point of several fields (``format: uri``, ``uuid``, ``date-time``),
and jsonschema checks a format only when the package it needs is installed: ``uri`` needs
``rfc3986-validator`` (or ``rfc3987``), ``date-time`` needs ``rfc3339-validator``. A
missing ``uri`` checker fails the validator's creation (it would pass every URI
silently); ``date-time`` falls back on a strict RFC 3339 check written here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SPEC_VARIABLE = "PIPELEDGER_OPENLINEAGE_SPEC"
#: Where the schemas are looked for, in order: the variable, ``../shared/openlineage-spec``
#: next to the repository, and the workplace's shared folder (for clones made elsewhere).
_CANDIDATES = [
    *([Path(os.environ[SPEC_VARIABLE])] if os.environ.get(SPEC_VARIABLE) else []),
    Path(__file__).resolve().parents[2] / "shared" / "openlineage-spec",
    Path("/work/shared/openlineage-spec"),
]
SPEC_DIR = next((p for p in _CANDIDATES if (p / "OpenLineage.json").is_file()), _CANDIDATES[0])
CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

#: Where in an event a facet sits, by the suffix of its schema's definition name.
_LOCATIONS = (
    ("InputDatasetFacet", "input"),
    ("OutputDatasetFacet", "output"),
    ("DatasetFacet", "dataset"),
    ("RunFacet", "run"),
    ("JobFacet", "job"),
)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)


def missing_reason() -> str | None:
    """Why the conformance tests cannot run here (the schemas' folder is absent), or None."""
    if (SPEC_DIR / "OpenLineage.json").is_file() and (SPEC_DIR / "facets").is_dir():
        return None
    return (
        f"OpenLineage's JSON schemas are not in {', '.join(map(str, _CANDIDATES))} (OpenLineage.json and facets/); "
        f"put them there or set {SPEC_VARIABLE}"
    )


def _rfc3339(instance: object) -> bool:
    if not isinstance(instance, str):
        return True  # formats apply to strings only
    if not _RFC3339.match(instance):
        return False
    try:
        datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def format_checker() -> FormatChecker:
    """Every format checker jsonschema has here, plus ``date-time`` if it has none.

    Raises:
        AssertionError: ``uri`` or ``uuid`` cannot be checked (a package is missing).
    """
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        checker.checks("date-time")(_rfc3339)
    missing = {"uri", "uuid", "date-time"} - set(checker.checkers)
    assert not missing, (
        f"jsonschema cannot check the format(s) {sorted(missing)} the OpenLineage schemas use: "
        "pip install rfc3986-validator (the dev extra has it)"
    )
    return checker


@dataclass
class OpenLineageSpec:
    """The core schema and the facet schemas of a folder, ready to validate events."""

    folder: Path
    checker: FormatChecker = field(default_factory=format_checker)

    def __post_init__(self) -> None:
        schemas = [json.loads((self.folder / "OpenLineage.json").read_text())]
        schemas += [json.loads(p.read_text()) for p in sorted((self.folder / "facets").glob("*.json"))]
        self.schemas = {s["$id"]: s for s in schemas}
        self.registry: Registry = Registry().with_resources(
            (schema_id, Resource.from_contents(schema)) for schema_id, schema in self.schemas.items()
        )
        #: (location, facet key) -> (the facet schema's $id, its definition's name)
        self.facets: dict[tuple[str, str], tuple[str, str]] = {}
        for schema_id, schema in self.schemas.items():
            for key, prop in schema.get("properties", {}).items():
                ref = prop.get("$ref", "")
                if schema_id == CORE_ID or not ref.startswith("#/$defs/"):
                    continue
                name = ref.removeprefix("#/$defs/")
                location = next(where for suffix, where in _LOCATIONS if name.endswith(suffix))
                self.facets[(location, key)] = (schema_id, name)

    def validator(self, schema_id: str) -> Draft202012Validator:
        """A validator of the schema ``schema_id`` (resolving references in the registry only)."""
        return Draft202012Validator(self.schemas[schema_id], registry=self.registry, format_checker=self.checker)

    def problems(self, event: dict[str, Any]) -> list[str]:
        """What is wrong with ``event``: each error as ``path: message`` (none for a valid event).

        The event is checked against the core schema as a whole (a RunEvent, DatasetEvent or
        JobEvent: ``oneOf``) and as a ``RunEvent`` (whose errors name the field), then each
        facet against its own schema, which must be the one its ``_schemaURL`` names."""
        run_event = {"$schema": self.schemas[CORE_ID]["$schema"], "$ref": f"{CORE_ID}#/$defs/RunEvent"}
        validator = Draft202012Validator(run_event, registry=self.registry, format_checker=self.checker)
        found = [_describe(e, "event") for e in validator.iter_errors(event)]
        if not found:
            found = [_describe(e, "event") for e in self.validator(CORE_ID).iter_errors(event)]
        for location, where, facets in _facets_of(event):
            for key, facet in facets.items():
                found += self._facet_problems(location, where, key, facet)
        return found

    def _facet_problems(self, location: str, where: str, key: str, facet: Any) -> list[str]:
        standard = self.facets.get((location, key))
        declared = facet.get("_schemaURL", "") if isinstance(facet, dict) else ""
        if standard is None:  # a custom facet: the core schema checked its base shape
            claimed = declared.partition("#")[0]
            if claimed.startswith("https://openlineage.io/") and claimed not in self.schemas:
                return [f"{where}.{key}: _schemaURL {declared!r} names an OpenLineage schema that does not exist"]
            return []
        schema_id, name = standard
        found = [_describe(e, where) for e in self.validator(schema_id).iter_errors({key: facet})]
        if declared != f"{schema_id}#/$defs/{name}":
            found.append(f"{where}.{key}: _schemaURL {declared!r} is not {schema_id}#/$defs/{name}")
        return found

    def check(self, event: dict[str, Any]) -> None:
        """Raise AssertionError listing every problem of ``event``."""
        problems = self.problems(event)
        assert not problems, "invalid OpenLineage event:\n" + "\n".join(problems)


def _facets_of(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(location, where, facets) of every facet map in an event."""
    found = [
        ("run", "run.facets", event.get("run", {}).get("facets", {})),
        ("job", "job.facets", event.get("job", {}).get("facets", {})),
    ]
    for side, own in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(side, [])):
            found.append(("dataset", f"{side}[{i}].facets", dataset.get("facets", {})))
            found.append((side.removesuffix("s"), f"{side}[{i}].{own}", dataset.get(own, {})))
    return [(location, where, facets) for location, where, facets in found if isinstance(facets, dict)]


def _describe(error: Any, where: str) -> str:
    """``where.path: message`` of a validation error (of the deepest error under an ``anyOf``)."""
    while error.context:
        error = best_match(error.context)
    path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where}{path}: {error.message}"
