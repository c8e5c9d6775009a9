"""The limits of what pipeledger records: one set for every name and value, on every backend.

Everything a pipeline puts into a metadata store is checked against these limits
*before* anything is recorded (names when a step or pipeline is defined or called,
logged values when :func:`~pipeledger.log_metadata` is called, a step's results before
they are recorded), so SQLite, MariaDB/MySQL, PostgreSQL and ML Metadata accept or
refuse exactly the same input, with the same :class:`~pipeledger.exceptions.DefinitionError`:

* **names** (pipelines, runs, steps, inputs, outputs, metadata keys, tags): a non-empty
  string of at most :data:`MAX_NAME_LENGTH` characters, without control characters
  (NUL included), unpaired surrogates, or leading/trailing whitespace (MySQL compares
  names ignoring trailing spaces);
* **JSON values** (parameters, logged metadata): finite numbers, text without NUL or
  unpaired surrogates (PostgreSQL's JSON holds no NUL), nested at most
  :data:`MAX_JSON_DEPTH` levels, and at most :data:`MAX_VALUE_BYTES` once encoded;
* **records**: the JSON of one record (a run's parameters, configuration, environment and
  stack; a step's logged metadata; an artifact's metadata) at most :data:`MAX_RECORD_BYTES`.

The sizes are measured on the compact ASCII JSON text (``json.dumps`` with its default
``ensure_ascii``), which is what the SQL stores send. They keep every statement far below
MariaDB's default ``max_allowed_packet`` of 16 MiB, even when the driver escapes every
character of the text. Free text that is recorded but never looked up (error tracebacks)
is made storable instead of refused: see :func:`storable_text`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from pipeledger.exceptions import DefinitionError
from pipeledger.text import plural

MAX_NAME_LENGTH = 255
"""Characters in a name: the ``VARCHAR(255)`` name columns of every SQL backend."""

MAX_JSON_DEPTH = 20
"""Nesting levels of a JSON value. MariaDB refuses JSON nested 32 levels deep, and a run's
configuration wraps each parameter in 4 more levels (``{"steps": {step: {"parameters":
{name: value}}}}``): stay well below."""

MAX_VALUE_BYTES = 1 << 20
"""Bytes of one parameter or logged metadata value, as compact ASCII JSON (1 MiB). Larger
data belongs in an artifact (return it from a step)."""

MAX_RECORD_BYTES = 4 << 20
"""Bytes of the JSON of one record: a run's parameters, configuration, environment and stack
together; all the metadata one step logs; the metadata of one artifact (4 MiB)."""

MAX_TEXT_CHARS = 1 << 20
"""Characters of a recorded error text; longer texts keep their beginning and end."""


def check_name(what: str, name: object) -> None:
    """Refuse names the store cannot keep: not a string, empty, over 255 characters, starting or
    ending with whitespace, or containing control characters. Quotes, SQL metacharacters and any
    Unicode are fine.

    Raises:
        DefinitionError: naming ``what`` (e.g. ``"step 'train': output name"``) and the problem.
    """
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(f"{what} is {plural(len(name), 'character')} long; the limit is {MAX_NAME_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DefinitionError(f"{what} {name[:40]!r} contains control characters")
    if name != name.strip():  # MySQL/MariaDB compare names ignoring trailing spaces
        raise DefinitionError(f"{what} {name[:40]!r} starts or ends with whitespace")
    if max(name) >= "\ud800" and any("\ud800" <= c <= "\udfff" for c in name):
        raise DefinitionError(f"{what} {name[:40]!r} contains unpaired surrogates (not valid Unicode text)")


def check_tag(tag: object, what: str = "tag") -> None:
    """Refuse a tag the store cannot keep: the name rules of :func:`check_name`, and no leading
    ``+`` or ``-`` (``pipeledger run tag RUN +prod -candidate`` adds and removes with them).

    Raises:
        DefinitionError: naming the tag and the problem.
    """
    check_name(what, tag)
    assert isinstance(tag, str)
    if tag[0] in "+-":
        raise DefinitionError(
            f"{what} {tag[:40]!r} starts with {tag[0]!r}; tags cannot (the CLI adds with +, removes with -)"
        )


def check_json(value: Any, what: str) -> int:
    """Raise :class:`DefinitionError` unless ``value`` is a finite JSON value every metadata store
    keeps exactly: no NaN or infinity, no NUL character or unpaired surrogate in strings, nested
    at most :data:`MAX_JSON_DEPTH` levels, at most :data:`MAX_VALUE_BYTES` encoded.

    ``what`` names the value in the message, e.g. ``"step 'train': parameter 'lr'"``.
    Returns the value's encoded size in bytes.
    """
    problem = _json_problem(value)
    if problem:
        raise DefinitionError(f"{what} must be a JSON value ({problem})")
    size = encoded_size(value)
    if size > MAX_VALUE_BYTES:
        raise DefinitionError(
            f"{what} is {_mib(size)} as JSON; the limit is {_mib(MAX_VALUE_BYTES)}: "
            "return large data from a step as an artifact instead"
        )
    return size


def check_metadata(values: Mapping[str, Any], what: str) -> int:
    """Check key/value metadata: every key a name, every value JSON within the limits, and all of
    it at most :data:`MAX_RECORD_BYTES`. Returns the total encoded size.

    Raises:
        DefinitionError: naming ``what`` (e.g. ``"log_metadata"``), the key and the problem.
    """
    total = 0
    for key, value in values.items():
        check_name(f"{what}: key", key)
        total += check_json(value, f"{what}: value of {key!r}")
    check_record_size(what, total)
    return total


def check_record_size(what: str, size: int) -> None:
    """Refuse a record whose JSON adds up to more than :data:`MAX_RECORD_BYTES`.

    Raises:
        DefinitionError: naming ``what`` and both sizes.
    """
    if size > MAX_RECORD_BYTES:
        raise DefinitionError(
            f"{what} adds up to {_mib(size)} of JSON; the limit is {_mib(MAX_RECORD_BYTES)} per record: "
            "return large data from a step as an artifact instead"
        )


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact ASCII JSON (what the SQL stores send)."""
    return len(json.dumps(value, allow_nan=False, separators=(",", ":")))


def storable_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` as every store keeps it: NUL characters and unpaired surrogates written as
    escapes (``\\x00``, ``\\ud800``), and a text longer than ``limit`` characters cut in the
    middle, keeping its beginning and its end (a traceback's last lines name the error)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        cut = len(text) - limit
        marker = f"\n[... {cut} characters cut ...]\n"
        head = (limit - len(marker)) // 2
        text = text[:head] + marker + text[len(text) - (limit - len(marker) - head) :]
    return text


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _json_problem(value: Any, depth: int = 0) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if _fits_int_digits(value) else "got an integer too long to write as JSON"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"got {value}, which JSON cannot hold"
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_JSON_DEPTH:
        return f"nested more than {MAX_JSON_DEPTH} levels deep"
    if isinstance(value, (list, tuple)):
        for item in value:
            if problem := _json_problem(item, depth + 1):
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"got a dict key {key!r} of type {type(key).__name__}; keys must be strings"
            if problem := _text_problem(key) or _json_problem(item, depth + 1):
                return problem
        return None
    return f"got a {type(value).__module__}.{type(value).__qualname__}"


def _text_problem(text: str) -> str | None:
    """Why the metadata store cannot keep ``text`` exactly (PostgreSQL's JSON holds no NUL
    character; no database holds unpaired surrogates), or None."""
    if "\x00" in text:
        return f"the text {text[:40]!r} contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"the text {text[:40]!r} contains unpaired surrogates (not valid Unicode text)"
    return None


def _fits_int_digits(value: int) -> bool:
    """False for ints longer than Python's int/str conversion limit (``json`` refuses them)."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if limit == 0 or value.bit_length() <= 3.32 * (limit - 1):
        return True
    try:
        return len(str(value)) > 0
    except ValueError:
        return False
