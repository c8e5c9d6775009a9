"""The navigation base class of the read side's views, and the mapping their children live in.

Every view (:class:`~pipeledger.client.PipelineView` -> :class:`~pipeledger.client.RunView`
-> :class:`~pipeledger.client.StepView` -> :class:`~pipeledger.client.ArtifactView`) wraps one
record read from a metadata store and navigates the same way:

* ``view.parent``: the level above (None for a pipeline, and for an artifact registered from
  outside any step);
* ``view["name"]``: a child by name (a pipeline's run, a run's step, a step's output);
  an unknown name raises :class:`~pipeledger.exceptions.NotFoundError` (a ``KeyError``)
  naming those that exist; ``"name" in view`` and ``for child in view`` work alike;
* ``repr(view)``: an expression a user can paste back, e.g. ``Client().get_run('training-3')``.

Views read only from the store (:mod:`pipeledger.metadata_store.base`) and the artifact store;
they never import execution code (pipelines, orchestrators, reproduce): ``make lint`` checks it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeledger.exceptions import NotFoundError

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore

V = TypeVar("V")
RecordT = TypeVar("RecordT")
ChildT = TypeVar("ChildT")


class NamedMapping(Mapping[str, V]):
    """An ordered read-only mapping whose missing keys raise a NotFoundError listing the keys."""

    def __init__(self, items: dict[str, V], what: str, where: str) -> None:
        self._items = items
        self._what = what
        self._where = where

    def __getitem__(self, key: str) -> V:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise NotFoundError(f"no {self._what} named {key!r} in {self._where}; {self._what}s: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._items.items())}}}"


class View(abc.ABC, Generic[RecordT, ChildT]):
    """One recorded object, read from ``store``: a level of Pipeline -> Run -> Step -> Artifact.

    Subclasses say their parent (:attr:`parent`), how to find a child by name
    (:meth:`_child`), how to list their children (:meth:`_children`) and how to be
    written back as code (:meth:`__repr__`).
    """

    def __init__(self, record: RecordT, store: MetadataStore) -> None:
        self._record = record
        self._store = store

    @property
    def record(self) -> RecordT:
        """The underlying record, as the store returned it."""
        return self._record

    @property
    def store(self) -> MetadataStore:
        """The metadata store this view reads from."""
        return self._store

    @property
    @abc.abstractmethod
    def parent(self) -> View[Any, Any] | None:
        """The level above: a run's pipeline, a step's run, an artifact's producing step."""

    @abc.abstractmethod
    def _child(self, name: str) -> ChildT:
        """The child called ``name``; raises NotFoundError naming the children that exist."""

    @abc.abstractmethod
    def _children(self) -> Iterator[ChildT]:
        """Every child, in order."""

    def __getitem__(self, name: str) -> ChildT:
        return self._child(name)

    def __iter__(self) -> Iterator[ChildT]:
        return self._children()

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self._child(name)
        except NotFoundError:
            return False
        return True

    @abc.abstractmethod
    def __repr__(self) -> str:
        """Code that reads this object back, e.g. ``Client().get_run('training-3')``."""
