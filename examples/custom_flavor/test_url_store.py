"""The metadata-store contract suite of ``pipeledger.testing``, run on the example ``url`` flavor.

Run it with this directory on ``PYTHONPATH``: ``pytest examples/custom_flavor/test_url_store.py``.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from url_store import UrlMetadataStoreConfig, UrlMetadataStoreFlavor

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.testing import MetadataStoreContract


class TestUrlStore(MetadataStoreContract):
    """Every contract test, each on a new SQLite database reached through the ``url`` flavor."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MetadataStore]:
        config = UrlMetadataStoreConfig(url=f"sqlite:///{tmp_path / 'metadata.db'}")
        opened = UrlMetadataStoreFlavor().create("contract", config, tmp_path)
        yield opened
        opened.close()
