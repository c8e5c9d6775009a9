"""Names read from ML Metadata made to obey pipeledger's name rules, reversibly.

MLMD accepts any text as a context, execution, event-path or property name; pipeledger's
names (:func:`pipeledger.limits.check_name`) are at most 255 characters (a pipeline name
244), hold no control character and neither start nor end with whitespace. An imported
name that already obeys the rules is kept exactly. One that does not is normalised
(docs/importing.md says the same):

1. ``%`` becomes ``%25``, and every control character (``\\t``, CR, LF, BEL, DEL...) and
   a leading or trailing whitespace character becomes ``%XX`` (its UTF-8 bytes, as in
   URLs); in a run name, the ``{`` of ``{n}`` (the store's run-number placeholder) becomes
   ``%7B``. ``urllib.parse.unquote`` gives the original back. An empty name becomes
   ``(empty)``.
2. A name still too long keeps its beginning (never cutting an ``%XX`` in two) followed by
   ``~`` and 8 hex digits of the SHA-256 of the original name, so distinct long names stay
   distinct.

Whatever changed, the record keeps the original (``mlmd.original_name`` in a step's
configuration, ``original_names`` in a run's ``imported_from``...), so nothing is lost.
"""

from __future__ import annotations

import hashlib

from pipeledger.limits import MAX_NAME_LENGTH
from pipeledger.steps.signature import MAX_PIPELINE_NAME_LENGTH

EMPTY = "(empty)"


def is_valid(name: str, *, limit: int = MAX_NAME_LENGTH, run: bool = False) -> bool:
    """Whether ``name`` is a pipeledger name as it is (``run``: a run name, which must not
    hold the ``{n}`` placeholder either)."""
    if not name or len(name) > limit or name != name.strip():
        return False
    if any(ord(c) < 32 or ord(c) == 127 or "\ud800" <= c <= "\udfff" for c in name):
        return False
    return not (run and "{n}" in name)


def normalise(name: str, *, limit: int = MAX_NAME_LENGTH, run: bool = False) -> str:
    """``name`` if it is a valid name, else its normalised form (see the module's docstring)."""
    if is_valid(name, limit=limit, run=run):
        return name
    if not name:
        return EMPTY
    stripped = name.strip()
    lead = len(name) - len(name.lstrip())
    trail = len(name) - len(name.rstrip()) if stripped else 0
    parts: list[str] = []
    for position, char in enumerate(name):
        edge = position < lead or (trail and position >= len(name) - trail)
        forbidden = ord(char) < 32 or ord(char) == 127 or "\ud800" <= char <= "\udfff"
        opens_placeholder = run and char == "{" and name.startswith("{n}", position)
        if char == "%" or edge or forbidden or opens_placeholder:
            parts.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
        else:
            parts.append(char)
    encoded = "".join(parts)
    if len(encoded) <= limit:
        return encoded
    suffix = "~" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    head = encoded[: limit - len(suffix)]
    cut = head.rfind("%", max(0, len(head) - 2))
    if cut != -1:  # do not end on half an escape
        head = head[:cut]
    return head + suffix


def pipeline_name(name: str) -> str:
    """A pipeline name: :func:`normalise` with the pipeline limit (244 characters, so that its
    default run names fit in 255)."""
    return normalise(name, limit=MAX_PIPELINE_NAME_LENGTH)


def run_name(name: str) -> str:
    """A run name: :func:`normalise`, with ``{n}`` escaped as well."""
    return normalise(name, run=True)
