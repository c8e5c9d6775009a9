"""Why a step hit or missed the cache, in words users can act on.

:func:`explain_difference` compares the cache-key components of a step run with
those of the latest earlier run of the same step and names what changed::

    source of step `train` changed
    source of helper `normalize` changed
    parameter `lr` 0.1 → 0.2
    input `data` content changed
    materializer of output `model` changed
    cache_version 'a' → 'b'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeledger.models import JSON

HIT = "cache hit"
DISABLED = {
    "run": "cache disabled for this run",
    "pipeline": "cache disabled on the pipeline",
    "step": "cache disabled on the step",
}
REFRESH = "cache refresh requested"
EXPIRED = "expired"
ARTIFACT_MISSING = "original artifact missing"
NO_EARLIER_RUN = "no earlier run of this step"
NO_MATCH = "no completed earlier run with the same cache key"


def entry_deleted(step: str, run: str) -> str:
    """Why a cache hit was not reused: another process deleted its run after the look-up."""
    return f"the cached result of step `{step}` of run `{run}` was deleted while being reused"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def explain_difference(
    current: Mapping[str, JSON], previous: Mapping[str, JSON] | None, step_entrypoint: str | None
) -> list[str]:
    """What differs between two sets of cache-key components (empty if nothing does)."""
    if previous is None:
        return [NO_EARLIER_RUN]
    reasons: list[str] = []
    if previous.get("format") != current.get("format"):
        reasons.append("cache key format changed (pipeledger upgrade)")
    old_code: dict[str, str] = dict(previous.get("code") or {})
    new_code: dict[str, str] = dict(current.get("code") or {})
    for name in sorted(set(old_code) | set(new_code)):
        short = name.rpartition(".")[2]
        kind = "step" if name == step_entrypoint else "helper"
        if name not in old_code:
            reasons.append(f"now uses {kind} `{short}`")
        elif name not in new_code:
            reasons.append(f"no longer uses {kind} `{short}`")
        elif old_code[name] != new_code[name]:
            reasons.append(f"source of {kind} `{short}` changed")
    old_params: dict[str, JSON] = dict(previous.get("parameters") or {})
    new_params: dict[str, JSON] = dict(current.get("parameters") or {})
    for name in sorted(set(old_params) | set(new_params)):
        if name not in old_params:
            reasons.append(f"new parameter `{name}` = {_short(new_params[name])}")
        elif name not in new_params:
            reasons.append(f"parameter `{name}` removed")
        elif old_params[name] != new_params[name]:
            reasons.append(f"parameter `{name}` {_short(old_params[name])} → {_short(new_params[name])}")
    for section, label in (
        ("inputs", "input `{}` content changed"),
        ("outputs", "materializer of output `{}` changed"),
    ):
        old: dict[str, JSON] = dict(previous.get(section) or {})
        new: dict[str, JSON] = dict(current.get(section) or {})
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                reasons.append(label.format(name))
    if previous.get("cache_version") != current.get("cache_version"):
        reasons.append(
            f"cache_version {_short(previous.get('cache_version'))} → {_short(current.get('cache_version'))}"
        )
    return reasons
