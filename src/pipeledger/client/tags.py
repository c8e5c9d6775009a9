"""Editable tags on the read side's views: ``run.add_tags("prod")``, ``step.remove_tags(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pipeledger.models import EntityKind

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore


class Taggable:
    """Tags of a run, step run or artifact view, read and changed in its store.

    Tags are strings (``key:value`` is a convention the search filters understand, e.g.
    ``tag like 'exp:%'``) following :func:`pipeledger.limits.check_tag`.
    """

    _tag_kind: ClassVar[EntityKind]
    _store: MetadataStore

    @property
    def id(self) -> str:  # pragma: no cover - every view defines it
        raise NotImplementedError

    @property
    def tags(self) -> list[str]:
        """Its tags, sorted (read from the store)."""
        return self._store.get_tags(self._tag_kind, [self.id]).get(self.id, [])

    def add_tags(self, *tags: str) -> None:
        """Add these tags (one atomic write; tags it already has stay once).

        Raises:
            DefinitionError: a tag breaks the name rules (nothing changes).
        """
        self._store.add_tags(self._tag_kind, self.id, list(tags))
        self._tags_changed()

    def remove_tags(self, *tags: str) -> None:
        """Remove these tags (one atomic write; tags it lacks are ignored)."""
        self._store.remove_tags(self._tag_kind, self.id, list(tags))
        self._tags_changed()

    def _tags_changed(self) -> None:
        """Hook: a view caching its tags refreshes them."""
