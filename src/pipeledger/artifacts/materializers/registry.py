"""Which materializer saves a value, and which one loads an artifact back."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from pipeledger.artifacts.materializers.base import Materializer
from pipeledger.artifacts.materializers.builtin import (
    BytesMaterializer,
    JSONMaterializer,
    PickleMaterializer,
)
from pipeledger.artifacts.materializers.optional import (
    NumpyMaterializer,
    PandasMaterializer,
)
from pipeledger.exceptions import MaterializerError


class MaterializerRegistry:
    """Maps Python types to materializers.

    A value is saved by the materializer registered for the most specific class
    in its MRO that accepts it (``can_save``); a user's registration for a class
    beats the built-in one. The pickle materializer takes whatever is left.

    Built-in materializers of libraries that are slow to import (scikit-learn with
    skops, pydantic) are registered by class name and created the first time a class of
    that name is looked up (or a user's materializer is registered for it): a value of
    that class means the library is already imported.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, list[Materializer]] = {}
        self._by_path: dict[str, Materializer] = {}
        self._lazy: dict[str, str] = dict(_LAZY_MATERIALIZERS)
        self.fallback = PickleMaterializer()
        self._by_path[self.fallback.import_path()] = self.fallback
        for materializer in _builtin_materializers():
            self.register(materializer, first=False)

    def register(self, materializer: Materializer, *, first: bool = True) -> None:
        """Use ``materializer`` for its ``handled_types`` (before earlier ones if ``first``)."""
        if not isinstance(materializer, Materializer):
            raise MaterializerError(
                f"{materializer!r} is not a Materializer instance; subclass "
                "pipeledger.Materializer and register an instance of it"
            )
        for cls in materializer.handled_types:
            self._entries(cls)  # a lazily registered built-in one first, so that a user's goes before it
            entries = self._by_type.setdefault(cls, [])
            if first:
                entries.insert(0, materializer)
            else:
                entries.append(materializer)
        self._by_path[materializer.import_path()] = materializer

    def for_value(self, value: Any) -> Materializer:
        """The materializer that saves ``value``."""
        for cls in type(value).__mro__:
            for materializer in self._entries(cls):
                if materializer.can_save(value):
                    return materializer
        return self.fallback

    def for_type(self, cls: type) -> Materializer:
        """The materializer registered for the most specific class of ``cls``'s MRO (pickle if none).

        Used before a value exists (e.g. for cache keys); :meth:`for_value` has the final word.
        """
        for base in cls.__mro__:
            entries = self._entries(base)
            if entries:
                return entries[0]
        return self.fallback

    def _entries(self, cls: type) -> list[Materializer]:
        """The materializers registered for ``cls``, creating a lazily registered built-in one."""
        entries = self._by_type.get(cls)
        if entries is None and self._lazy:
            path = self._lazy.pop(f"{cls.__module__}.{cls.__qualname__}", None)
            if path is not None:
                with contextlib.suppress(MaterializerError):  # its library (e.g. skops) is not installed
                    self.register(self.by_path(path), first=False)
                entries = self._by_type.get(cls)
        return entries or []

    def by_path(self, import_path: str) -> Materializer:
        """The materializer recorded as ``import_path`` (importing it if not registered)."""
        found = self._by_path.get(import_path)
        if found is not None:
            return found
        module, _, name = import_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
            instance = cls()
        except Exception as exc:
            raise MaterializerError(
                f"cannot load materializer {import_path}: {type(exc).__name__}: {exc}; "
                "install the package that provides it"
            ) from exc
        self._by_path[import_path] = instance
        return instance


def _builtin_materializers() -> list[Materializer]:
    found: list[Materializer] = [JSONMaterializer(), BytesMaterializer()]
    for optional in (NumpyMaterializer, PandasMaterializer):
        try:
            found.append(optional())
        except ImportError:
            continue
    return found


#: Built-in materializers created on first use: class name -> materializer import path.
_LAZY_MATERIALIZERS = {
    "sklearn.base.BaseEstimator": "pipeledger.artifacts.materializers.optional.SkopsMaterializer",
    "pydantic.main.BaseModel": "pipeledger.artifacts.materializers.optional.PydanticMaterializer",
}

_default: MaterializerRegistry | None = None


def default_registry() -> MaterializerRegistry:
    """The process-wide registry used by pipelines (created on first use)."""
    global _default
    if _default is None:
        _default = MaterializerRegistry()
    return _default


def register_materializer(materializer: Materializer) -> None:
    """Save values of ``materializer.handled_types`` with ``materializer`` from now on.

    Example::

        class CsvMaterializer(Materializer):
            handled_types = (MyTable,)
            def save(self, value, fs, path): ...
            def load(self, fs, path, data_type): ...

        register_materializer(CsvMaterializer())
    """
    default_registry().register(materializer)
