"""The materializer contract: how a Python value becomes files in an artifact directory and back."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from pipeledger.models import JSON

#: What a preview shows of text (JSON, a pydantic model's JSON, bytes): the first KiB.
PREVIEW_TEXT_BYTES = 1024
#: At most this much of an array's data is read to preview it (its statistics are of that part).
PREVIEW_DATA_BYTES = 1 << 20
#: Rows of a table shown in a preview.
PREVIEW_ROWS = 5


def read_head(fs: Any, path: str, size: int) -> bytes:
    """The first ``size`` bytes of the file ``path``: one ranged read on object storage."""
    return bytes(fs.cat_file(path, start=0, end=size))


def text_preview(fs: Any, path: str, kind: str) -> dict[str, JSON]:
    """The first KiB of a text file, decoded (a character cut in two is replaced), and whether
    there is more."""
    head = read_head(fs, path, PREVIEW_TEXT_BYTES + 1)
    truncated = len(head) > PREVIEW_TEXT_BYTES
    return {
        "kind": kind,
        "text": head[:PREVIEW_TEXT_BYTES].decode("utf-8", errors="replace"),
        "truncated": truncated,
    }


class Materializer(abc.ABC):
    """Saves values of some Python types to a directory and loads them back.

    Subclasses declare the types they handle, an artifact ``artifact_type`` for
    humans and tools, and a ``version`` that must change whenever the file
    format changes (it is part of cache keys). ``save``/``load`` receive an
    :class:`fsspec.AbstractFileSystem` and a directory path on it.
    """

    #: The Python types this materializer handles (subclasses included).
    handled_types: ClassVar[tuple[type, ...]] = ()
    #: The artifact's kind as recorded in the metadata store.
    artifact_type: ClassVar[str] = "Data"
    #: Version of the on-disk format; bump it when the format changes.
    version: ClassVar[str] = "1"
    #: Whether loading could run code taken from the files (pickle, joblib, cloudpickle) or
    #: trusts what they say (skops' list of trusted types). Then pipeledger copies the files
    #: to a private temporary directory, checks their content hash against the recorded
    #: one, refuses on a mismatch (:class:`~pipeledger.exceptions.ArtifactIntegrityError`),
    #: and ``load`` reads the verified copy (which is removed when ``load`` returns, so
    #: ``load`` must not return objects that read the files later), and a cache hit
    #: checks the hash before reusing the artifact. True unless a materializer declares
    #: its format data-only (JSON, raw bytes, ``.npy`` without pickle, Parquet): a
    #: changed file of such a format yields wrong data, never runs code, and is found by
    #: ``pipeledger metadata-store check --deep``.
    verify_before_load: ClassVar[bool] = True

    def can_save(self, value: Any) -> bool:
        """Whether this materializer can save ``value`` (default: it is an instance of a
        handled type). Override to refuse values whose contents it cannot store."""
        return isinstance(value, self.handled_types)

    @abc.abstractmethod
    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        """Write ``value`` into the (existing, empty) directory ``path`` on ``fs``.

        Returns extra metadata to record with the artifact (may be empty).
        """

    @abc.abstractmethod
    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        """Read back the value saved in ``path``; ``data_type`` is the recorded type, if importable."""

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        """A bounded summary of the artifact saved in ``path``, without loading it whole: the
        first KiB of text, an array's shape and dtype, a table's schema and first rows. Reads at
        most about :data:`PREVIEW_DATA_BYTES`, with ranged reads where the format allows.

        None (the default): this materializer gives no preview. Formats whose loading could
        run code (pickle, skops) give none: a preview never loads them.
        """
        return None

    @classmethod
    def import_path(cls) -> str:
        """``module.QualifiedName`` of this class, as recorded with each artifact."""
        return f"{cls.__module__}.{cls.__qualname__}"
