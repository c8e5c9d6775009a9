"""The artifact store contract suite: pytest tests any :class:`~pipeledger.artifacts.store.ArtifactStore`
flavor must pass (the contract is written out in ``docs/artifact-stores.md``).

Subclass :class:`ArtifactStoreContract` (in a class named ``Test...``) and give it an
``artifact_store`` fixture yielding an **empty** store of your flavor::

    class TestMyArtifactStore(ArtifactStoreContract):
        @pytest.fixture
        def artifact_store(self, tmp_path):
            yield MyArtifactStoreFlavor().create("mine", MyConfig(path=...), tmp_path)

The tests call only the contract's methods (``write``, ``read``, ``exists``, ``size``,
``delete``, ``list``, ``content_hash``, ``write_text``, ``read_text``) and
:func:`~pipeledger.artifacts.store.read_artifact`; to make an artifact half-written they
write files through the store's ``fs`` directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from pipeledger.artifacts.files import MANIFEST
from pipeledger.artifacts.materializers import Materializer, default_registry
from pipeledger.artifacts.materializers.registry import MaterializerRegistry
from pipeledger.artifacts.store import ArtifactStore, WrittenArtifact, read_artifact
from pipeledger.exceptions import ArtifactIntegrityError, ArtifactNotFoundError, MaterializerError
from pipeledger.models import JSON, ArtifactRecord, utcnow


def new_id() -> str:
    """A fresh artifact or run id (32 hex digits)."""
    return uuid.uuid4().hex


def step_dir(store: ArtifactStore, step: str = "train") -> str:
    """A new step run's directory in ``store`` (as the step runner makes them)."""
    return store.step_dir(None, "contract", "contract-1", new_id(), step, new_id())


def record_of(written: WrittenArtifact, artifact_id: str) -> ArtifactRecord:
    """The record a metadata store would keep of ``written``."""
    return ArtifactRecord(
        id=artifact_id,
        uri=written.uri,
        type=written.materializer.artifact_type,
        data_type=written.data_type,
        materializer=written.materializer.import_path(),
        materializer_version=written.materializer.version,
        content_hash=written.content_hash,
        size=written.size,
        producer_step_run_id=None,
        created_at=utcnow(),
    )


def write(store: ArtifactStore, value: Any, directory: str | None = None, output: str = "out") -> ArtifactRecord:
    """Write ``value`` as a new artifact of a new (or the given) step directory; its record."""
    artifact_id = new_id()
    uri = store.artifact_uri(directory or step_dir(store), output, artifact_id)
    return record_of(store.write(value, uri, artifact_id, default_registry()), artifact_id)


@dataclass
class Opaque:
    """A value no data-only materializer takes: stored with pickle, verified before loading."""

    numbers: list[int]


class _Exploding(Materializer):
    """Writes one file, then fails."""

    handled_types = (Opaque,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        with fs.open(f"{path}/part.bin", "wb") as f:
            f.write(b"x" * 1000)
        raise RuntimeError("disk on fire")

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        raise AssertionError("never written")


class ArtifactStoreContract:
    """What every artifact store does; override the ``artifact_store`` fixture."""

    @pytest.fixture
    def artifact_store(self) -> Any:
        raise NotImplementedError("define an artifact_store fixture yielding an empty ArtifactStore")

    # -- write / read ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        "value",
        [{"a": [1, 2.5, None], "b": "é"}, b"\x00\xffbytes", (1, "two"), Opaque([3, 1, 2])],
        ids=["json", "bytes", "tuple", "pickle"],
    )
    def test_written_values_read_back_equal(self, artifact_store: ArtifactStore, value: Any) -> None:
        record = write(artifact_store, value)
        assert artifact_store.exists(record.uri)
        assert artifact_store.read(record, default_registry()) == value
        assert read_artifact(record, default_registry()) == value  # through the URI alone

    def test_write_records_the_content_hash_and_size_the_store_reports(self, artifact_store: ArtifactStore) -> None:
        record = write(artifact_store, b"y" * 12345)
        assert artifact_store.content_hash(record.uri) == record.content_hash
        assert artifact_store.size(record.uri) == record.size >= 12345
        other = write(artifact_store, b"y" * 12346)
        assert other.content_hash != record.content_hash

    def test_the_same_value_hashes_the_same_in_any_directory(self, artifact_store: ArtifactStore) -> None:
        first, second = write(artifact_store, [1, 2, 3]), write(artifact_store, [1, 2, 3], output="again")
        assert first.uri != second.uri and first.content_hash == second.content_hash

    def test_uris_are_under_the_root_and_name_the_artifact(self, artifact_store: ArtifactStore) -> None:
        record = write(artifact_store, 1)
        assert artifact_store.holds(record.uri) and record.uri.endswith(f"/out/{record.id}")

    # -- atomicity -------------------------------------------------------------------------

    def test_a_failing_materializer_leaves_no_artifact(self, artifact_store: ArtifactStore) -> None:
        registry = MaterializerRegistry()
        registry.register(_Exploding())
        directory = step_dir(artifact_store)
        artifact_id = new_id()
        uri = artifact_store.artifact_uri(directory, "out", artifact_id)
        with pytest.raises(MaterializerError, match="disk on fire"):
            artifact_store.write(Opaque([1]), uri, artifact_id, registry)
        assert not artifact_store.exists(uri)
        assert artifact_store.list(directory) == []

    def test_files_without_their_completion_are_not_an_artifact(self, artifact_store: ArtifactStore) -> None:
        """A half-written artifact (files uploaded, manifest not yet; or a temporary directory
        not yet moved into place) does not exist for readers, listings or size."""
        directory = step_dir(artifact_store)
        artifact_id = new_id()
        uri = artifact_store.artifact_uri(directory, "out", artifact_id)
        fs = artifact_store.fs
        if artifact_store.manifests:
            half = artifact_store.path_of(uri)
        else:
            half = f"{artifact_store.path_of(directory)}/.tmp-{artifact_id}"
        fs.makedirs(half, exist_ok=True)
        fs.pipe_file(f"{half}/data.json", b"[1, 2")
        record = ArtifactRecord(
            artifact_id, uri, "Data", "builtins.list", "pipeledger.artifacts.materializers.builtin.JSONMaterializer",
            "1", "0" * 64, 5, None, utcnow(),
        )  # fmt: skip
        assert not artifact_store.exists(uri)
        assert artifact_store.list(directory) == []
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.read(record, default_registry())
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.size(uri)

    def test_an_artifact_whose_completion_mark_is_removed_stops_existing(self, artifact_store: ArtifactStore) -> None:
        record = write(artifact_store, [1])
        if artifact_store.manifests:
            artifact_store.fs.rm_file(f"{artifact_store.path_of(record.uri)}/{MANIFEST}")
        else:
            artifact_store.fs.rm(artifact_store.path_of(record.uri), recursive=True)
        assert not artifact_store.exists(record.uri)
        with pytest.raises(ArtifactNotFoundError):
            read_artifact(record, default_registry())

    # -- integrity -------------------------------------------------------------------------

    def test_changed_files_change_the_hash_and_are_not_unpickled(self, artifact_store: ArtifactStore) -> None:
        record = write(artifact_store, Opaque([1, 2]))
        fs, path = artifact_store.fs, artifact_store.path_of(record.uri)
        (data,) = [f for f in fs.find(path) if not f.endswith(MANIFEST)]
        fs.pipe_file(data, fs.cat_file(data) + b"tampered")
        assert artifact_store.content_hash(record.uri) != record.content_hash
        with pytest.raises(ArtifactIntegrityError):
            artifact_store.read(record, default_registry())

    # -- exists / size / list / delete -----------------------------------------------------

    def test_missing_artifacts_do_not_exist_and_have_no_size_or_hash(self, artifact_store: ArtifactStore) -> None:
        uri = artifact_store.artifact_uri(step_dir(artifact_store), "out", new_id())
        assert not artifact_store.exists(uri)
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.size(uri)
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.content_hash(uri)

    def test_list_gives_the_complete_artifacts_under_a_directory(self, artifact_store: ArtifactStore) -> None:
        directory = step_dir(artifact_store)
        mine = sorted([write(artifact_store, 1, directory, "a").uri, write(artifact_store, 2, directory, "b").uri])
        elsewhere = write(artifact_store, 3).uri
        assert artifact_store.list(directory) == mine
        assert set(artifact_store.list()) >= {*mine, elsewhere}
        assert artifact_store.list(artifact_store.artifact_uri(step_dir(artifact_store), "x", new_id())) == []

    def test_delete_removes_the_artifact_and_says_whether_there_was_one(self, artifact_store: ArtifactStore) -> None:
        kept, doomed = write(artifact_store, "kept"), write(artifact_store, "doomed")
        assert artifact_store.delete(doomed.uri) is True
        assert not artifact_store.exists(doomed.uri)
        assert not artifact_store.fs.exists(artifact_store.path_of(doomed.uri))  # no file left behind
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.read(doomed, default_registry())
        assert artifact_store.delete(doomed.uri) is False
        assert artifact_store.read(kept, default_registry()) == "kept"

    # -- text files (logs) -----------------------------------------------------------------

    def test_text_files_round_trip_exactly(self, artifact_store: ArtifactStore) -> None:
        uri = artifact_store.logs_uri(step_dir(artifact_store))
        text = "line 1\r\nprogress 10%\rprogress 100%\nünïcode\n"
        artifact_store.write_text(uri, text)
        assert artifact_store.read_text(uri) == text
        artifact_store.write_text(uri, "replaced")
        assert artifact_store.read_text(uri) == "replaced"

    def test_reading_a_missing_text_file_raises_not_found(self, artifact_store: ArtifactStore) -> None:
        with pytest.raises(ArtifactNotFoundError):
            artifact_store.read_text(artifact_store.logs_uri(step_dir(artifact_store)))
