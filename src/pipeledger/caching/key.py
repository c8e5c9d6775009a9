"""The cache key of a step run, in a documented canonical form.

A step run's cache key is the sha256 of the canonical JSON (sorted keys, no
spaces) of its **components**::

    {
      "format": "pipeledger-cache-key/1",       # version of this definition
      "code": {"module.step": "<sha256>", "module.helper": "<sha256>", ...},
                                                # the step and the user code it reaches
                                                # (see caching.sources), formatting ignored
      "parameters": {"lr": 0.1, ...},           # the parameter values
      "inputs": {"data": "<content sha256>"},   # content hashes of the input artifacts
      "outputs": {"model": "<materializer>@<version>", ...},
                                                # each output's materializer, from its annotation
      "cache_version": "..."                    # the user's @step(cache_version=...), or null
    }

The components are stored with the step run, so a miss can be explained by
comparing them with those of the latest earlier run of the same step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_origin

from pipeledger.models import JSON, ArtifactRecord
from pipeledger.steps.signature import canonical_json
from pipeledger.steps.step import Step

if TYPE_CHECKING:
    from pipeledger.artifacts.materializers import MaterializerRegistry

KEY_FORMAT = "pipeledger-cache-key/1"


@dataclass(frozen=True)
class CacheKey:
    """A cache key and the components it hashes."""

    key: str
    components: dict[str, JSON]


def output_materializers(step: Step, registry: MaterializerRegistry) -> dict[str, str]:
    """``{output: "materializer@version"}`` chosen from each output's annotated type.

    An output annotated with a concrete class gets the materializer registered
    for it (or the pickle fallback); an unannotated output is ``"any"``: the
    materializer actually used is then checked against the cached artifact.
    """
    found: dict[str, str] = {}
    for spec in step.signature.outputs:
        annotation = spec.annotation
        cls = get_origin(annotation) or annotation
        if not isinstance(cls, type) or cls is object:
            found[spec.name] = "any"
            continue
        materializer = registry.for_type(cls)
        found[spec.name] = f"{materializer.import_path()}@{materializer.version}"
    return found


def compute_cache_key(
    step: Step,
    parameters: Mapping[str, JSON],
    inputs: Mapping[str, ArtifactRecord],
    registry: MaterializerRegistry,
) -> CacheKey:
    """The cache key of running ``step`` with these parameters and input artifacts."""
    components: dict[str, Any] = {
        "format": KEY_FORMAT,
        "code": step.code_fingerprint(),
        "parameters": dict(parameters),
        "inputs": {name: art.content_hash for name, art in sorted(inputs.items())},
        "outputs": output_materializers(step, registry),
        "cache_version": step.cache_version,
    }
    key = hashlib.sha256(canonical_json(components).encode()).hexdigest()
    return CacheKey(key, components)
