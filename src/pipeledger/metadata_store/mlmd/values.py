"""Encoding pipeledger values as MLMD property values, and back.

* Times are ``int_value`` microseconds since the Unix epoch (UTC): exact, and
  comparable in MLMD filter queries.
* JSON documents (parameters, configuration...) are ``string_value`` JSON.
* Key/value metadata (what steps log) goes to ``custom_properties``: ``bool``,
  ``int`` (64-bit) and ``str`` as MLMD's native values; any other JSON value
  (floats, lists, objects, None, big integers) as a ``struct_value`` holding its
  JSON text under ``"json"``, so it reads back exactly. Floats are not stored as
  ``double_value`` because MLMD's storage keeps only 6 significant digits of
  them (0.14285714285714285 reads back as 0.142857); a plain Struct would turn
  every integer into a float.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeledger.models import DEFAULT_PROJECT, JSON

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT64 = 2**63
_JSON_KEY = "json"


def micros(at: datetime) -> int:
    """``at`` (timezone-aware) as whole microseconds since the epoch."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The UTC datetime ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def string(value: str) -> Any:
    """An MLMD ``Value`` holding a string."""
    return mlmd.Value(string_value=value)


def integer(value: int) -> Any:
    """An MLMD ``Value`` holding a 64-bit integer."""
    return mlmd.Value(int_value=value)


def boolean(value: bool) -> Any:
    """An MLMD ``Value`` holding a bool."""
    return mlmd.Value(bool_value=value)


def time_value(at: datetime) -> Any:
    """An MLMD ``Value`` holding a time (microseconds since the epoch)."""
    return mlmd.Value(int_value=micros(at))


def json_value(value: JSON) -> Any:
    """An MLMD ``Value`` holding a JSON document as text."""
    return mlmd.Value(string_value=json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def metadata_value(value: JSON) -> Any:
    """An MLMD ``Value`` for one key/value metadata entry (see the module docstring)."""
    if isinstance(value, bool):
        return mlmd.Value(bool_value=value)
    if isinstance(value, int) and -_INT64 <= value < _INT64:
        return mlmd.Value(int_value=value)
    if isinstance(value, str):
        return mlmd.Value(string_value=value)
    wrapped = mlmd.Value()
    wrapped.struct_value.update({_JSON_KEY: json.dumps(value, ensure_ascii=False, separators=(",", ":"))})
    return wrapped


def metadata_from_value(value: Any) -> JSON:
    """The JSON value :func:`metadata_value` encoded (or any MLMD value written by others)."""
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "int_value":
        return int(value.int_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "string_value":
        return str(value.string_value)
    if kind == "struct_value":
        fields = value.struct_value.fields
        if set(fields) == {_JSON_KEY} and fields[_JSON_KEY].WhichOneof("kind") == "string_value":
            return json.loads(fields[_JSON_KEY].string_value)
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(value.struct_value)
    return None


def quote(text: str) -> str:
    """``text`` as a string literal of MLMD's filter-query language."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


class Props:
    """Typed access to the ``properties`` map of an MLMD node (absent -> None)."""

    def __init__(self, node: Any) -> None:
        self._props = node.properties

    def text(self, key: str) -> str | None:
        return str(self._props[key].string_value) if key in self._props else None

    def number(self, key: str) -> int | None:
        return int(self._props[key].int_value) if key in self._props else None

    def flag(self, key: str) -> bool | None:
        return bool(self._props[key].bool_value) if key in self._props else None

    def time(self, key: str) -> datetime | None:
        return from_micros(self._props[key].int_value) if key in self._props else None

    def document(self, key: str, default: JSON = None) -> JSON:
        return json.loads(self._props[key].string_value) if key in self._props else default


def outside_default(projects: Collection[str] | None) -> bool:
    """Whether a restriction to ``projects`` excludes every record of an ML Metadata store: its
    pipelines are all in project ``default`` (it keeps no project of its own)."""
    return projects is not None and DEFAULT_PROJECT not in projects
