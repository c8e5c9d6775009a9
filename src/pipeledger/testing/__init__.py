"""The metadata-store contract suite: pytest tests any :class:`~pipeledger.metadata_store.base.MetadataStore` must pass.

Subclass :class:`MetadataStoreContract` in a test module (its name starting with
``Test``) and give it a ``store`` fixture that yields an open, **empty** store and
closes it afterwards; pytest then runs every contract test on that store::

    import pytest
    from pipeledger.testing import MetadataStoreContract

    class TestMyStore(MetadataStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            opened = open_my_store(tmp_path)
            yield opened
            opened.close()

The tests use only the public contract of ``MetadataStore`` (the docstrings of
:mod:`pipeledger.metadata_store.base` are what they check), never an
implementation's internals, so any flavor (SQL, ML Metadata, a REST client) runs the
same suite. Each topic is a mixin of its own (:class:`RunsContract`,
:class:`LineageContract`, ...), for a store that implements only part of the
contract while it is being written. A store that cannot delete runs
(``delete_run`` raises ``UnsupportedOperationError``) skips the one test that needs it.

:class:`ArtifactStoreContract` (:mod:`pipeledger.testing.artifact_store`) is the artifact
store's: give it an ``artifact_store`` fixture yielding an empty
:class:`~pipeledger.artifacts.store.ArtifactStore` of your flavor.

This package imports pytest: import it from your tests only (``import pipeledger``
never imports it). :mod:`pipeledger.testing.helpers` has the record builders the
tests use, for your own tests.
"""

from __future__ import annotations

from pipeledger.testing.artifact_store import ArtifactStoreContract
from pipeledger.testing.artifacts_and_io import ArtifactsContract
from pipeledger.testing.cache import CacheContract
from pipeledger.testing.finish_and_start import FinishAndStartContract
from pipeledger.testing.lineage import LineageContract
from pipeledger.testing.metadata import MetadataContract
from pipeledger.testing.names import NamesContract
from pipeledger.testing.projects import ProjectsContract
from pipeledger.testing.register_artifact import RegisterArtifactContract
from pipeledger.testing.runs import RunsContract
from pipeledger.testing.search import SearchContract
from pipeledger.testing.step_runs import StepRunsContract
from pipeledger.testing.tags import TagsContract

__all__ = [
    "ArtifactStoreContract",
    "ArtifactsContract",
    "CacheContract",
    "FinishAndStartContract",
    "LineageContract",
    "MetadataContract",
    "MetadataStoreContract",
    "NamesContract",
    "ProjectsContract",
    "RegisterArtifactContract",
    "RunsContract",
    "SearchContract",
    "StepRunsContract",
    "TagsContract",
]


class MetadataStoreContract(
    RunsContract,
    StepRunsContract,
    FinishAndStartContract,
    ArtifactsContract,
    MetadataContract,
    CacheContract,
    LineageContract,
    RegisterArtifactContract,
    NamesContract,
    TagsContract,
    SearchContract,
    ProjectsContract,
):
    """Every contract test. Subclass it as ``Test<YourStore>`` and define a ``store`` fixture
    yielding an open, empty store (closed after the test)."""
