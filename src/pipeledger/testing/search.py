"""Search: ``MetadataStore.search`` (the filter language of ``docs/searching.md``).

Every store runs the searches ``list_runs`` can answer (runs by pipeline, status and start,
newest or oldest first, cursor pages); a store with a query engine runs the rest and the others
raise ``UnsupportedOperationError``, never a wrong answer.
"""

from __future__ import annotations

import pytest

from pipeledger.exceptions import QueryError, UnsupportedOperationError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import Status
from pipeledger.testing.helpers import at, make_run


def _runs(store: MetadataStore) -> list[str]:
    names = []
    for i, (pipeline, status) in enumerate(
        [
            ("train", Status.COMPLETED),
            ("serve", Status.COMPLETED),
            ("train", Status.FAILED),
            ("train", Status.COMPLETED),
        ]
    ):
        run = make_run(store, pipeline, start_time=at(60 * i), tags=["prod"] if i % 2 else [])
        store.finish_run(run.id, status, end_time=at(60 * i + 30))
        names.append(run.name)
    return names


class SearchContract:
    """``search``: the part every store answers, pages, errors, and refusals."""

    def test_search_runs_by_pipeline_and_status_newest_first(self, store: MetadataStore) -> None:
        _runs(store)

        page = store.search("run", "pipeline = 'train' and status = 'completed'")

        assert [r.name for r in page.items] == ["train-3", "train-1"]
        assert page.next_page_token is None
        oldest = store.search("run", "pipeline = 'train'", order_by="started")
        assert [r.name for r in oldest.items] == ["train-1", "train-2", "train-3"]

    def test_pages_follow_each_other_without_gaps(self, store: MetadataStore) -> None:
        _runs(store)

        first = store.search("run", None, limit=3)
        assert first.next_page_token is not None
        second = store.search("run", None, limit=3, page_token=first.next_page_token)

        assert [r.name for r in [*first.items, *second.items]] == ["train-3", "train-2", "serve-1", "train-1"]
        assert second.next_page_token is None

    def test_a_bad_filter_raises_query_error_with_a_caret(self, store: MetadataStore) -> None:
        with pytest.raises(QueryError) as error:
            store.search("run", "pipeline = 'train' and")
        assert str(error.value).splitlines()[-1].endswith("^")
        with pytest.raises(QueryError):
            store.search("run", None, page_token="not a token")
        with pytest.raises(QueryError):
            store.search("run", None, limit=0)

    def test_a_search_beyond_listing_is_answered_or_refused(self, store: MetadataStore) -> None:
        _runs(store)
        try:
            page = store.search("run", "tag = 'prod' or status = 'failed'", order_by="name")
        except UnsupportedOperationError as error:
            assert "cannot search" in str(error)
            return
        assert [r.name for r in page.items] == ["serve-1", "train-2", "train-3"]
