"""The materializer contract: how a Python value becomes files in an artifact directory and back."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from pipeledger.models import JSON


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

    @classmethod
    def import_path(cls) -> str:
        """``module.QualifiedName`` of this class, as recorded with each artifact."""
        return f"{cls.__module__}.{cls.__qualname__}"
