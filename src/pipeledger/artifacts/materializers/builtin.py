"""Materializers for Python's built-in values: JSON where possible, raw bytes, pickle last."""

from __future__ import annotations

import json
import math
import platform
import sys
import warnings
from typing import Any, ClassVar

from pipeledger.artifacts.materializers.base import PREVIEW_TEXT_BYTES, Materializer, read_head, text_preview
from pipeledger.exceptions import PipeledgerWarning
from pipeledger.models import JSON

_JSON_SCALARS = (type(None), bool, int, float, str)


def _is_json(value: Any, depth: int = 0) -> bool:
    """True if ``value`` round-trips through JSON unchanged (tuples excepted, see below)."""
    if depth > 200:
        return False
    if isinstance(value, _JSON_SCALARS):
        if type(value) is str:
            return _is_utf8(value)
        if type(value) is int:
            return _fits_int_digits(value)
        return type(value) in _JSON_SCALARS
    if type(value) in (list, tuple):
        return all(_is_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_utf8(k) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _is_utf8(text: str) -> bool:
    """False for strings UTF-8 cannot encode (lone surrogates, e.g. from ``surrogateescape``)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fits_int_digits(value: int) -> bool:
    """False for ints too long for Python's int/str conversion limit (``json`` would refuse)."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    return limit == 0 or value.bit_length() <= (limit - 1) * 3.32


class JSONMaterializer(Materializer):
    """None, bool, int, float, str, and lists, tuples and dicts (string keys) of them, as
    ``data.json``. NaN and infinities are kept. A top-level tuple loads back as a tuple;
    values it cannot represent exactly fall through to another materializer."""

    handled_types = (type(None), bool, int, float, str, list, tuple, dict)
    artifact_type = "Data"
    verify_before_load = False

    def can_save(self, value: Any) -> bool:
        return _is_json(value)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        text = json.dumps(value, ensure_ascii=False)  # one write: json.dump writes chunk by chunk
        with fs.open(f"{path}/data.json", "w", encoding="utf-8") as f:
            f.write(text)
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/data.json", "r", encoding="utf-8") as f:
            value = json.load(f)
        if data_type is tuple:
            return tuple(value)
        if data_type is float and isinstance(value, int):
            return float(value)
        return value

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        return text_preview(fs, f"{path}/data.json", "json")


class BytesMaterializer(Materializer):
    """``bytes`` and ``bytearray`` as a raw ``data.bin`` file."""

    handled_types = (bytes, bytearray)
    verify_before_load = False

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        with fs.open(f"{path}/data.bin", "wb") as f:
            f.write(bytes(value))
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/data.bin", "rb") as f:
            data = f.read()
        return bytearray(data) if data_type is bytearray else data

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        head = read_head(fs, f"{path}/data.bin", PREVIEW_TEXT_BYTES + 1)
        shown = head[:PREVIEW_TEXT_BYTES]
        try:
            text: str | None = shown.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        preview: dict[str, JSON] = {
            "kind": "bytes",
            "hex": shown[:64].hex(),
            "text": text,
            "truncated": len(head) > PREVIEW_TEXT_BYTES,
        }
        media_type = image_type(head)
        if media_type is not None:
            preview["media_type"] = media_type
        return preview


#: Magic numbers of the raster image formats a browser shows (never SVG: it can hold scripts).
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    """The media type of the raster image whose first bytes are ``head`` (PNG, JPEG, GIF,
    WebP), or None."""
    for magic, media_type in _IMAGE_MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class PickleMaterializer(Materializer):
    """Any other value, with cloudpickle, as ``data.pkl``.

    Pickles are tied to the Python version and the libraries that made them, so
    the Python version and the versions of the distributions providing the value's
    type are recorded with the artifact, and a warning is given once per type:
    register a materializer for the type to store it portably.

    Unpickling runs code named in the file: the files are checked against their
    recorded content hash before they are loaded (``verify_before_load``), so a
    swapped ``data.pkl`` is refused; reading pickles recorded in a metadata store you
    do not trust still runs whatever its writer put in them.
    """

    handled_types = (object,)
    verify_before_load = True
    _warned: ClassVar[set[str]] = set()

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        if type_name not in self._warned:
            self._warned.add(type_name)
            fix = (
                "install skops (pip install 'pipeledger[sklearn]') to store scikit-learn models without pickle"
                if type_name.startswith("sklearn.")
                else "register a materializer for it with pipeledger.register_materializer()"
            )
            warnings.warn_explicit(
                f"no materializer for {type_name}: storing it with cloudpickle, readable only "
                f"with the same Python and library versions; {fix}",
                PipeledgerWarning,
                filename="pipeledger",
                lineno=0,
            )
        import cloudpickle  # on first use: ~25 ms to import

        with fs.open(f"{path}/data.pkl", "wb") as f:
            cloudpickle.dump(value, f)
        from pipeledger.environment import package_versions

        packages = package_versions([type(value).__module__, "cloudpickle"])
        return {"python_version": platform.python_version(), "packages": dict(packages)}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        import cloudpickle

        with fs.open(f"{path}/data.pkl", "rb") as f:
            return cloudpickle.load(f)


def is_finite_json(value: Any) -> bool:
    """True if ``value`` is strict JSON (no NaN or infinity anywhere)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_finite_json(v) for v in value)
    if isinstance(value, dict):
        return all(is_finite_json(v) for v in value.values())
    return True
