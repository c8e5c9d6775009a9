"""Materializers: values round-trip through a real pipeline and directly through the artifact
store; what each artifact records; hashes; user materializers; missing and failed artifacts."""

import contextlib
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

import pipeledger
import pipeledger.artifacts.materializers.registry as materializer_registry
from pipeledger import (
    ArtifactNotFoundError,
    Client,
    Materializer,
    MaterializerError,
    NotFoundError,
    RunFailedError,
    Status,
    pipeline,
    step,
)
from pipeledger.artifacts.materializers import MaterializerRegistry
from pipeledger.artifacts.materializers.builtin import PickleMaterializer
from pipeledger.artifacts.store import ArtifactStore, WrittenArtifact, read_artifact
from pipeledger.exceptions import PipeledgerWarning
from pipeledger.models import ArtifactRecord, new_id, utcnow

BUILTIN = "pipeledger.artifacts.materializers.builtin"
OPTIONAL = "pipeledger.artifacts.materializers.optional"
JSON_M = f"{BUILTIN}.JSONMaterializer"
BYTES_M = f"{BUILTIN}.BytesMaterializer"
PICKLE_M = f"{BUILTIN}.PickleMaterializer"
NUMPY_M = f"{OPTIONAL}.NumpyMaterializer"
PANDAS_M = f"{OPTIONAL}.PandasMaterializer"
PYDANTIC_M = f"{OPTIONAL}.PydanticMaterializer"


# --- value types defined here (importable, so their recorded data_type resolves) -------------


class TrainingConfig(BaseModel):
    name: str
    lr: float
    layers: list[int]
    notes: dict[str, str] = {}


@dataclass
class Point:
    x: float
    y: float


class Labelled:
    """A plain class with state and no materializer: cloudpickle stores it."""

    def __init__(self, label: str, weights: list[float]) -> None:
        self.label = label
        self.weights = weights

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labelled) and (self.label, self.weights) == (other.label, other.weights)

    __hash__ = None  # type: ignore[assignment]


class PointMaterializer(Materializer):
    """A user materializer: a Point as ``point.txt``."""

    handled_types = (Point,)
    artifact_type = "Geometry"
    version = "7"

    def save(self, value: Any, fs: Any, path: str) -> dict[str, Any]:
        with fs.open(f"{path}/point.txt", "w") as f:
            f.write(f"{value.x!r},{value.y!r}")
        return {"format": "x,y"}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/point.txt", "r") as f:
            x, y = f.read().split(",")
        return (data_type or Point)(float(x), float(y))


class DictUpperMaterializer(Materializer):
    """A user materializer for a built-in type: dicts with upper-cased keys on disk."""

    handled_types = (dict,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, Any]:
        with fs.open(f"{path}/upper.json", "w") as f:
            json.dump({k.upper(): v for k, v in value.items()}, f)
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/upper.json", "r") as f:
            return {k.lower(): v for k, v in json.load(f).items()}


class Exploding:
    """A value whose materializer fails halfway through writing."""


class ExplodingMaterializer(Materializer):
    handled_types = (Exploding,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, Any]:
        with fs.open(f"{path}/partial.bin", "wb") as f:
            f.write(b"half written")
        raise RuntimeError("disk on fire")

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        raise AssertionError("never written, never read")


class RefusingMaterializer(ExplodingMaterializer):
    def save(self, value: Any, fs: Any, path: str) -> dict[str, Any]:
        with fs.open(f"{path}/partial.bin", "wb") as f:
            f.write(b"half written")
        raise MaterializerError("refusing on purpose")


class UnreadableMaterializer(PointMaterializer):
    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        raise ValueError("corrupt point")


# --- the cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    materializer: str
    type: str = "Data"

    @property
    def pickled(self) -> bool:
        return self.materializer == PICKLE_M


CASES: dict[str, Case] = {
    "none": Case(lambda: None, JSON_M),
    "true": Case(lambda: True, JSON_M),
    "false": Case(lambda: False, JSON_M),
    "int": Case(lambda: 42, JSON_M),
    "negative-int": Case(lambda: -7, JSON_M),
    "big-int": Case(lambda: 2**100 + 1, JSON_M),
    "float": Case(lambda: 0.1, JSON_M),
    "whole-float": Case(lambda: 3.0, JSON_M),
    "negative-zero": Case(lambda: -0.0, JSON_M),
    "nan": Case(lambda: float("nan"), JSON_M),
    "inf": Case(lambda: float("inf"), JSON_M),
    "minus-inf": Case(lambda: float("-inf"), JSON_M),
    "str": Case(lambda: "plain", JSON_M),
    "empty-str": Case(lambda: "", JSON_M),
    "unicode-str": Case(lambda: 'héllo wörld ✓ 日本語 🚀 \u0000 "quoted"\n', JSON_M),
    "bytes": Case(lambda: b"\x00\xff\x10binary", BYTES_M),
    "bytearray": Case(lambda: bytearray(b"mutable \x00 bytes"), BYTES_M),
    "list": Case(lambda: [1, "two", 3.5, None, True], JSON_M),
    "empty-list": Case(lambda: [], JSON_M),
    "dict": Case(lambda: {"a": 1, "b": "two", "ü": [1.5]}, JSON_M),
    "empty-dict": Case(lambda: {}, JSON_M),
    "nested": Case(
        lambda: {
            "layers": [{"units": 64, "activation": "relu"}, {"units": 1, "activation": None}],
            "optimizer": {"name": "adam", "betas": [0.9, 0.999], "schedule": {"warmup": 10}},
            "flags": [[True, False], []],
        },
        JSON_M,
    ),
    "nested-non-finite": Case(lambda: {"loss": [1.0, float("inf"), float("-inf")]}, JSON_M),
    "tuple": Case(lambda: (1, "two", 3.0, None), JSON_M),
    "empty-tuple": Case(lambda: (), JSON_M),
    "int-key-dict": Case(lambda: {1: "one", 2: "two"}, PICKLE_M),
    "lone-surrogate-str": Case(lambda: "bad-\udcff-name", PICKLE_M),
    "lone-surrogate-key": Case(lambda: {"bad-\udcff": 1}, PICKLE_M),
    "huge-int": Case(lambda: 10**5000 + 1, PICKLE_M),
    "int64-array": Case(lambda: np.arange(10, dtype=np.int64), NUMPY_M),
    "float32-2d-array": Case(lambda: np.arange(12, dtype=np.float32).reshape(3, 4) / 7, NUMPY_M),
    "float64-nan-array": Case(lambda: np.array([1.5, np.nan, np.inf, -np.inf]), NUMPY_M),
    "uint8-3d-array": Case(lambda: np.arange(24, dtype=np.uint8).reshape(2, 3, 4), NUMPY_M),
    "bool-array": Case(lambda: np.array([[True, False], [False, True]]), NUMPY_M),
    "complex-array": Case(lambda: np.array([1 + 2j, -3.5j]), NUMPY_M),
    "unicode-array": Case(lambda: np.array(["ab", "ç", "日本"]), NUMPY_M),
    "datetime-array": Case(lambda: np.array(["2024-01-01", "2024-02-29"], dtype="datetime64[ns]"), NUMPY_M),
    "fortran-array": Case(lambda: np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)), NUMPY_M),
    "scalar-array": Case(lambda: np.array(2.5), NUMPY_M),
    "empty-array": Case(lambda: np.zeros((0, 3)), NUMPY_M),
    "object-array": Case(lambda: np.array([1, "a", None], dtype=object), PICKLE_M),
    "numpy-scalar": Case(lambda: np.float64(1.25), PICKLE_M),
    "dataframe": Case(
        lambda: pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "ü"], "c": [0.5, np.nan, 2.0], "d": [True, False, True]}),
        PANDAS_M,
        "Dataset",
    ),
    "dataframe-index": Case(
        lambda: pd.DataFrame({"value": [1.0, 2.0]}, index=pd.Index(["first", "second"], name="key")),
        PANDAS_M,
        "Dataset",
    ),
    "dataframe-datetimes": Case(
        lambda: pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-06-30"]), "n": [1, 2]}),
        PANDAS_M,
        "Dataset",
    ),
    "dataframe-int-columns": Case(lambda: pd.DataFrame({0: [1, 2], 1: [3, 4]}), PICKLE_M),
    "series": Case(lambda: pd.Series([1.5, 2.5, np.nan], name="score"), PANDAS_M, "Dataset"),
    "series-index": Case(
        lambda: pd.Series([1, 2], index=pd.Index(["a", "b"], name="k"), name="count"),
        PANDAS_M,
        "Dataset",
    ),
    "pydantic": Case(
        lambda: TrainingConfig(name="run ✓", lr=0.01, layers=[64, 32], notes={"k": "v"}),
        PYDANTIC_M,
    ),
    "arbitrary-class": Case(lambda: Labelled("model", [0.25, -1.0]), PICKLE_M),
    "dataclass": Case(lambda: Point(1.5, -2.0), PICKLE_M),
}


def assert_same(actual: Any, expected: Any) -> None:
    """``actual`` equals ``expected``, with the same type (NaN equal to NaN)."""
    assert type(actual) is type(expected)
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype
        assert actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
    elif isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(actual, expected)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(actual, expected)
    elif isinstance(expected, float):
        assert actual == expected or (math.isnan(actual) and math.isnan(expected))
        assert math.copysign(1, actual) == math.copysign(1, expected)
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same(actual[key], expected[key])
    else:
        assert actual == expected


def pickle_warning_expected(case: Case, type_name: str) -> Any:
    """``pytest.warns`` for the pickle fallback's warning, or a guard that no such warning comes."""
    if case.pickled:
        return pytest.warns(PipeledgerWarning, match=f"no materializer for {type_name}")
    return _no_pipeledger_warning()


@contextlib.contextmanager
def _no_pipeledger_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PipeledgerWarning)
        yield


def type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_pickle_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pickle fallback warns once per type per process; start each test with none given."""
    monkeypatch.setattr(PickleMaterializer, "_warned", set())


@pytest.fixture
def default_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[MaterializerRegistry]:
    """A fresh process-wide registry for pipelines, restored after the test."""
    fresh = MaterializerRegistry()
    monkeypatch.setattr(materializer_registry, "_default", fresh)
    yield fresh


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"), name="test-store")


@pytest.fixture
def registry() -> MaterializerRegistry:
    return MaterializerRegistry()


def write(
    store: ArtifactStore, registry: MaterializerRegistry, value: Any, output: str = "output"
) -> tuple[WrittenArtifact, ArtifactRecord]:
    """Write ``value`` as a step output would be, and the record the metadata store would keep."""
    artifact_id = new_id()
    uri = store.artifact_uri(step_dir(store), output, artifact_id)
    written = store.write(value, uri, artifact_id, registry)
    record = ArtifactRecord(
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
        artifact_store=store.name,
    )
    return written, record


def expected_hash(directory: Path) -> tuple[str, int]:
    """sha256 over ``<relative name>\\0<contents>\\0`` of each file, sorted by name; total size."""
    digest = hashlib.sha256()
    size = 0
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for file in sorted(files, key=lambda p: p.relative_to(directory).as_posix()):
        data = file.read_bytes()
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0" + data + b"\0")
        size += len(data)
    return digest.hexdigest(), size


def step_dir(store: ArtifactStore) -> str:
    return store.step_dir("0" * 32, "pipe", "pipe-1", "1" * 32, "step", "2" * 32)


def tmp_leftovers(store: ArtifactStore) -> list[str]:
    """Temporary directories of writes (next to the output directories, see the layout)."""
    return sorted(str(p) for p in Path(store.root).rglob(".tmp*"))


# --- round trips through a real pipeline -------------------------------------------------------


@step
def produce(case: str = "none") -> Annotated[Any, "value"]:
    return CASES[case].make()


@step
def echo(value: Any, case: str = "none") -> Annotated[Any, "same"]:
    # The downstream step receives the loaded value, not a placeholder.
    assert_same(value, CASES[case].make())
    return value


@pipeline
def roundtrip(case: str = "none"):
    echo(produce(case=case), case=case)


@pytest.mark.parametrize("case_name", CASES)
def test_round_trip_through_a_pipeline(case_name: str) -> None:
    case = CASES[case_name]
    expected = case.make()
    with pickle_warning_expected(case, type_name(expected)) as caught:
        run = roundtrip(case=case_name)
    if case.pickled:
        # Once per type, although the value is written twice (by produce and by echo).
        assert len([w for w in caught if issubclass(w.category, PipeledgerWarning)]) == 1
    assert run.status is Status.COMPLETED

    produced = run.steps["produce"].outputs["value"]
    same = run.steps["echo"].outputs["same"]
    assert run.steps["echo"].inputs["value"].id == produced.id
    for artifact in (produced, same):
        assert_same(artifact.read(), expected)
        assert artifact.materializer == case.materializer
        assert artifact.materializer_version == "1"
        assert artifact.type == case.type
        assert artifact.data_type == type_name(expected)
        assert artifact.artifact_store == "default"
        assert artifact.size > 0
        assert len(artifact.content_hash) == 64
        assert (artifact.content_hash, artifact.size) == expected_hash(Path(artifact.uri))
    # The same value written twice has the same hash, at two different places.
    assert produced.content_hash == same.content_hash
    assert produced.uri != same.uri
    # Read again through a fresh client: nothing depends on in-memory state.
    again = Client().get_artifact(produced.id)
    assert_same(again.read(), expected)


def test_recorded_artifact_metadata_through_a_pipeline() -> None:
    with pytest.warns(PipeledgerWarning):
        runs = {
            name: roundtrip(case=name) for name in ("float32-2d-array", "dataframe", "series", "arbitrary-class", "int")
        }
    array = runs["float32-2d-array"].steps["produce"].output
    assert array.metadata == {"shape": [3, 4], "dtype": "float32"}
    frame = runs["dataframe"].steps["produce"].output
    assert frame.metadata == {"shape": [3, 4], "series": False}
    series = runs["series"].steps["produce"].output
    assert series.metadata == {"shape": [3], "series": True}
    pickled = runs["arbitrary-class"].steps["produce"].output
    assert set(pickled.metadata) == {"python_version", "packages"}
    assert "cloudpickle" in pickled.metadata["packages"]  # the library versions the pickle needs
    assert runs["int"].steps["produce"].output.metadata == {}


# --- round trips directly through the artifact store -------------------------------------------


@pytest.mark.parametrize("case_name", CASES)
def test_round_trip_through_the_artifact_store(
    case_name: str, store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    case = CASES[case_name]
    value = case.make()
    assert registry.for_value(value).import_path() == case.materializer
    with pickle_warning_expected(case, type_name(value)):
        written, record = write(store, registry, value)

    assert written.materializer.import_path() == case.materializer
    assert written.materializer.artifact_type == case.type
    assert written.materializer.version == "1"
    assert written.data_type == type_name(value)
    assert written.size > 0
    assert (written.content_hash, written.size) == expected_hash(Path(written.uri))
    if case.pickled:
        assert written.metadata.keys() == {"python_version", "packages"}

    loaded = read_artifact(record, registry)
    assert_same(loaded, value)
    # A registry that has never seen the value reads it as well.
    assert_same(read_artifact(record, MaterializerRegistry()), value)


def test_json_files_hold_plain_json(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    value = {"name": "日本", "values": [1, 2.5, None]}
    written, _ = write(store, registry, value)
    files = os.listdir(written.uri)
    assert files == ["data.json"]
    text = (Path(written.uri) / "data.json").read_text(encoding="utf-8")
    assert json.loads(text) == value
    assert "日本" in text  # stored as UTF-8, not escaped
    digest = hashlib.sha256(b"data.json\0" + text.encode("utf-8") + b"\0").hexdigest()
    assert written.content_hash == digest
    assert written.size == len(text.encode("utf-8"))


def test_bytes_are_stored_raw(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    payload = bytes(range(256))
    written, _ = write(store, registry, payload)
    assert (Path(written.uri) / "data.bin").read_bytes() == payload
    assert written.size == 256
    assert written.content_hash == hashlib.sha256(b"data.bin\0" + payload + b"\0").hexdigest()


def test_empty_bytes_round_trip_with_size_zero(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    written, record = write(store, registry, b"")
    assert written.size == 0
    assert written.content_hash == hashlib.sha256(b"data.bin\0\0").hexdigest()
    assert read_artifact(record, registry) == b""


def test_nested_tuples_load_as_lists_but_the_top_level_stays_a_tuple(
    store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    _, record = write(store, registry, (1, (2, 3), [4, (5,)]))
    assert read_artifact(record, registry) == (1, [2, 3], [4, [5]])


@pytest.mark.parametrize(
    "case_name",
    [
        "int",
        "nested",
        "tuple",
        "bytes",
        "float32-2d-array",
        "dataframe",
        "series",
        "pydantic",
        "arbitrary-class",
        "int-key-dict",
    ],
)
def test_the_same_value_written_twice_has_the_same_hash(
    case_name: str, store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipeledgerWarning)
        first, _ = write(store, registry, CASES[case_name].make())
        second, _ = write(store, registry, CASES[case_name].make(), output="other")
    assert first.uri != second.uri
    assert first.content_hash == second.content_hash
    assert first.size == second.size


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 2),
        (1, 1.0),
        (1, True),
        ("a", b"a"),
        ({"a": 1}, {"a": 2}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (np.arange(3), np.arange(3).astype(np.int32)),
        (np.zeros((2, 3)), np.zeros((3, 2))),
        (pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [2]})),
        (TrainingConfig(name="a", lr=0.1, layers=[]), TrainingConfig(name="a", lr=0.2, layers=[])),
        (Labelled("a", [1.0]), Labelled("b", [1.0])),
    ],
    ids=[
        "int",
        "int-vs-float",
        "int-vs-bool",
        "str-vs-bytes",
        "dict",
        "dict-key-order",
        "dtype",
        "shape",
        "dataframe",
        "pydantic",
        "object",
    ],
)
def test_different_values_have_different_hashes(
    a: Any, b: Any, store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipeledgerWarning)
        first, _ = write(store, registry, a)
        second, _ = write(store, registry, b)
    # The hash covers the stored files, so values stored differently hash differently
    # (even dicts equal in Python but written in another key order).
    assert first.content_hash != second.content_hash


def test_the_hash_covers_the_files_only(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    # A list and a tuple are the same JSON file: same hash; the recorded data_type differs.
    as_list, _ = write(store, registry, [1, 2])
    as_tuple, _ = write(store, registry, (1, 2))
    assert as_list.content_hash == as_tuple.content_hash
    assert (as_list.data_type, as_tuple.data_type) == ("builtins.list", "builtins.tuple")


# --- the pickle fallback -------------------------------------------------------------------------


def test_the_pickle_fallback_warns_once_per_type(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    with pytest.warns(PipeledgerWarning) as caught:
        write(store, registry, Labelled("a", []))
        write(store, registry, Labelled("b", [1.0]))
        write(store, registry, {1: "int keys"})
    messages = [str(w.message) for w in caught if issubclass(w.category, PipeledgerWarning)]
    assert len(messages) == 2
    assert messages[0].startswith(f"no materializer for {__name__}.Labelled: storing it with cloudpickle")
    assert "pipeledger.register_materializer()" in messages[0]
    assert messages[1].startswith("no materializer for builtins.dict")

    with warnings.catch_warnings():
        warnings.simplefilter("error", PipeledgerWarning)
        write(store, registry, Labelled("c", []))  # already warned: silent


def test_pickle_warning_is_attributed_to_pipeledger(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    with pytest.warns(PipeledgerWarning) as caught:
        write(store, registry, Labelled("a", []))
    assert caught[0].filename == "pipeledger"


# --- user materializers --------------------------------------------------------------------------


def test_a_registered_materializer_beats_pickle(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    assert registry.for_value(Point(1, 2)) is registry.fallback
    mine = PointMaterializer()
    registry.register(mine)
    assert registry.for_value(Point(1, 2)) is mine

    with warnings.catch_warnings():
        warnings.simplefilter("error", PipeledgerWarning)
        written, record = write(store, registry, Point(1.5, -2.25))
    assert written.materializer is mine
    assert record.materializer == f"{__name__}.PointMaterializer"
    assert record.materializer_version == "7"
    assert record.type == "Geometry"
    assert record.data_type == f"{__name__}.Point"
    assert written.metadata == {"format": "x,y"}
    assert os.listdir(written.uri) == ["point.txt"]
    assert read_artifact(record, registry) == Point(1.5, -2.25)
    # Another registry imports the recorded materializer class to read it.
    assert read_artifact(record, MaterializerRegistry()) == Point(1.5, -2.25)


def test_a_registered_materializer_handles_subclasses(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    class Point3(Point):
        pass

    registry.register(PointMaterializer())
    written, _ = write(store, registry, Point3(1, 2))
    assert written.materializer.import_path() == f"{__name__}.PointMaterializer"


def test_a_registered_materializer_beats_a_builtin_one(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    registry.register(DictUpperMaterializer())
    written, record = write(store, registry, {"a": 1})
    assert written.materializer.import_path() == f"{__name__}.DictUpperMaterializer"
    assert os.listdir(written.uri) == ["upper.json"]
    assert read_artifact(record, registry) == {"a": 1}
    # Other types keep their built-in materializer.
    assert registry.for_value([1]).import_path() == JSON_M


def test_registering_something_else_than_a_materializer_fails(
    registry: MaterializerRegistry,
) -> None:
    with pytest.raises(MaterializerError, match="is not a Materializer instance"):
        registry.register(PointMaterializer)  # type: ignore[arg-type]


def test_register_materializer_applies_to_pipelines(
    default_registry: MaterializerRegistry,
) -> None:
    @step
    def make_point() -> Annotated[Point, "point"]:
        return Point(3.0, 4.0)

    @step
    def norm(point: Point) -> float:
        return (point.x**2 + point.y**2) ** 0.5

    @pipeline
    def geometry():
        norm(make_point())

    pipeledger.register_materializer(PointMaterializer())
    with warnings.catch_warnings():
        warnings.simplefilter("error", PipeledgerWarning)
        run = geometry()
    point = run.steps["make_point"].outputs["point"]
    assert point.materializer == f"{__name__}.PointMaterializer"
    assert point.materializer_version == "7"
    assert point.type == "Geometry"
    assert point.metadata == {"format": "x,y"}
    assert point.read() == Point(3.0, 4.0)
    assert run.steps["norm"].output.read() == 5.0


# --- missing and failed artifacts ---------------------------------------------------------------


def test_reading_an_artifact_whose_directory_is_gone_names_the_uri(
    store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    written, record = write(store, registry, {"a": 1})
    store.fs.rm(written.uri, recursive=True)
    with pytest.raises(ArtifactNotFoundError, match=rf"{record.id}.*{re.escape(written.uri)}") as raised:
        read_artifact(record, registry)
    assert isinstance(raised.value, NotFoundError)
    assert isinstance(raised.value, KeyError)
    assert written.uri in str(raised.value)


def test_reading_a_deleted_pipeline_artifact_names_the_uri() -> None:
    run = roundtrip(case="dict")
    artifact = run.steps["produce"].output
    for file in Path(artifact.uri).iterdir():
        file.unlink()
    Path(artifact.uri).rmdir()
    with pytest.raises(ArtifactNotFoundError, match=re.escape(f"files are missing at {artifact.uri}")):
        artifact.read()


def test_a_failing_materializer_leaves_nothing_behind(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    registry.register(ExplodingMaterializer())
    artifact_id = new_id()
    uri = store.artifact_uri(step_dir(store), "output", artifact_id)
    with pytest.raises(
        MaterializerError,
        match=re.escape(f"{__name__}.ExplodingMaterializer could not save an Exploding: RuntimeError: disk on fire"),
    ) as raised:
        store.write(Exploding(), uri, artifact_id, registry)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert not store.fs.exists(uri)
    assert not Path(uri).parent.exists()
    assert tmp_leftovers(store) == []

    # The store still works afterwards.
    _, record = write(store, registry, [1, 2])
    assert read_artifact(record, registry) == [1, 2]
    assert tmp_leftovers(store) == []


def test_a_materializer_error_from_a_materializer_is_raised_as_is(
    store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    registry.register(RefusingMaterializer())
    artifact_id = new_id()
    uri = store.artifact_uri(step_dir(store), "output", artifact_id)
    with pytest.raises(MaterializerError, match=r"^refusing on purpose$"):
        store.write(Exploding(), uri, artifact_id, registry)
    assert not store.fs.exists(uri)
    assert tmp_leftovers(store) == []


def test_a_failing_materializer_fails_the_step_and_leaves_nothing(
    default_registry: MaterializerRegistry, home: Path
) -> None:
    @step
    def make() -> Annotated[Exploding, "thing"]:
        return Exploding()

    @pipeline
    def exploding():
        make()

    default_registry.register(ExplodingMaterializer())
    with pytest.raises(RunFailedError, match="failed in step 'make': MaterializerError"):
        exploding()
    run = Client().get_pipeline("exploding").latest_run
    assert run.status is Status.FAILED
    assert run.steps["make"].status is Status.FAILED
    assert "disk on fire" in (run.steps["make"].error or "")
    assert list(run.steps["make"].outputs) == []

    root = Path(home) / "artifacts"
    (step_dir,) = root.glob(f"stores/*/exploding/*-{run.id}/make-*")
    assert sorted(os.listdir(step_dir)) == ["logs.txt"]  # no output directory, no temporary one


def test_a_failing_load_names_the_artifact(store: ArtifactStore, registry: MaterializerRegistry) -> None:
    registry.register(UnreadableMaterializer())
    _, record = write(store, registry, Point(1, 2))
    with pytest.raises(
        MaterializerError,
        match=rf"cannot read artifact {record.id} at .*ValueError: corrupt point",
    ):
        read_artifact(record, registry)


def test_an_unknown_recorded_materializer_cannot_be_loaded(
    store: ArtifactStore, registry: MaterializerRegistry
) -> None:
    _, record = write(store, registry, 1)
    missing = ArtifactRecord(**{**record.__dict__, "materializer": "no_such_package.SomeMaterializer"})
    with pytest.raises(MaterializerError, match="cannot load materializer no_such_package"):
        read_artifact(missing, registry)


class _Unregistered:
    """A type no materializer handles: stored with the pickle fallback, which warns."""


def test_the_pickle_warning_points_at_the_step_and_names_its_output() -> None:
    @step
    def make_unregistered() -> _Unregistered:
        return _Unregistered()

    @pipeline
    def unregistered_type() -> None:
        make_unregistered()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unregistered_type()
    [warning] = [w for w in caught if issubclass(w.category, PipeledgerWarning)]
    assert warning.filename == __file__  # not "pipeledger", line 0
    assert "step 'make_unregistered', output 'output': no materializer for" in str(warning.message)
