"""Materializers for third-party types, active only when their library is installed."""

from __future__ import annotations

import importlib
import json
from typing import Any

from pipeledger.artifacts.materializers.base import (
    PREVIEW_DATA_BYTES,
    PREVIEW_ROWS,
    Materializer,
    read_head,
    text_preview,
)
from pipeledger.exceptions import MaterializerError
from pipeledger.models import JSON


class PydanticMaterializer(Materializer):
    """A pydantic model as ``model.json`` plus the model class's import path (registered on
    first use, see ``registry._LAZY_MATERIALIZERS``: ``import pipeledger`` does not import pydantic)."""

    verify_before_load = False  # JSON, validated by the model

    def __init__(self) -> None:
        from pydantic import BaseModel

        self._base = BaseModel
        type(self).handled_types = (BaseModel,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        cls = type(value)
        with fs.open(f"{path}/model.json", "w", encoding="utf-8") as f:
            f.write(value.model_dump_json())
        with fs.open(f"{path}/class.json", "w", encoding="utf-8") as f:
            json.dump({"class": f"{cls.__module__}:{cls.__qualname__}"}, f)
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        cls = data_type
        if cls is None or not issubclass(cls, self._base):
            with fs.open(f"{path}/class.json", "r", encoding="utf-8") as f:
                module, _, qualname = json.load(f)["class"].partition(":")
            try:
                obj: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as exc:
                raise MaterializerError(
                    f"cannot import pydantic model {module}:{qualname} to load {path}: {exc}"
                ) from exc
            if not (isinstance(obj, type) and issubclass(obj, self._base)):
                raise MaterializerError(f"{module}:{qualname} named in {path}/class.json is not a pydantic model")
            cls = obj
        with fs.open(f"{path}/model.json", "r", encoding="utf-8") as f:
            return cls.model_validate_json(f.read())

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        return text_preview(fs, f"{path}/model.json", "json")


class NumpyMaterializer(Materializer):
    """A numpy array as ``array.npy`` (no pickle; object arrays fall through to pickle)."""

    artifact_type = "Data"
    verify_before_load = False  # loaded with allow_pickle=False

    def __init__(self) -> None:
        import numpy

        self._np = numpy
        type(self).handled_types = (numpy.ndarray,)

    def can_save(self, value: Any) -> bool:
        return isinstance(value, self._np.ndarray) and not value.dtype.hasobject

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        with fs.open(f"{path}/array.npy", "wb") as f:
            self._np.save(f, value, allow_pickle=False)
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/array.npy", "rb") as f:
            return self._np.load(f, allow_pickle=False)

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        """Shape and dtype from the ``.npy`` header, and statistics of the first MiB of data
        (``stats_of`` says how many elements that is), from one ranged read."""
        import io

        from numpy.lib import format as npy

        head = read_head(fs, f"{path}/array.npy", PREVIEW_DATA_BYTES + 4096)
        stream = io.BytesIO(head)
        version = npy.read_magic(stream)
        header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = header(stream)
        total = 1
        for n in shape:
            total *= n
        preview: dict[str, JSON] = {"kind": "array", "shape": list(shape), "dtype": str(dtype), "size": total}
        itemsize = max(dtype.itemsize, 1)
        count = min(total, PREVIEW_DATA_BYTES // itemsize, (len(head) - stream.tell()) // itemsize)
        if count and dtype.kind in "biuf" and not fortran:
            part = self._np.frombuffer(head, dtype=dtype, count=count, offset=stream.tell())
            preview["stats_of"] = count
            preview["min"], preview["max"] = part.min().item(), part.max().item()
            preview["mean"] = float(part.mean())
            preview["first"] = part[:10].tolist()
        return preview


class PandasMaterializer(Materializer):
    """A pandas DataFrame or Series as Parquet (needs pyarrow; else it falls through to pickle)."""

    artifact_type = "Dataset"
    verify_before_load = False  # Parquet: data only

    def __init__(self) -> None:
        import pandas
        import pyarrow  # noqa: F401  (Parquet engine)

        self._pd = pandas
        type(self).handled_types = (pandas.DataFrame, pandas.Series)

    def can_save(self, value: Any) -> bool:
        if not isinstance(value, self.handled_types):
            return False
        frame: Any = value.to_frame() if isinstance(value, self._pd.Series) else value
        return all(isinstance(c, str) for c in frame.columns)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        is_series = isinstance(value, self._pd.Series)
        frame = value.to_frame() if is_series else value
        with fs.open(f"{path}/data.parquet", "wb") as f:
            frame.to_parquet(f)
        return {"shape": list(value.shape), "series": is_series}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/data.parquet", "rb") as f:
            frame = self._pd.read_parquet(f)
        if data_type is self._pd.Series:
            return frame.iloc[:, 0]
        return frame

    def preview(self, fs: Any, path: str) -> dict[str, JSON] | None:
        """Columns and types, the number of rows (from the Parquet footer, read with ranged
        reads), and the first rows (from the first row group)."""
        import pyarrow.parquet as pq

        with fs.open(f"{path}/data.parquet", "rb") as f:
            parquet = pq.ParquetFile(f)
            schema = parquet.schema_arrow
            rows: list[dict[str, Any]] = []
            for batch in parquet.iter_batches(batch_size=PREVIEW_ROWS):
                rows = batch.to_pylist()
                break
            return {
                "kind": "table",
                "rows": parquet.metadata.num_rows,
                "columns": {
                    name: str(schema.field(name).type) for name in schema.names if not name.startswith("__index")
                },
                "head": [{k: _plain(v) for k, v in row.items() if not k.startswith("__index")} for row in rows],
            }


def _plain(value: Any) -> JSON:
    """A cell as JSON: numbers, strings, booleans and None as they are, anything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _importable(name: str) -> bool:
    """Whether ``module.QualName`` names an object of an imported module other than ``__main__``
    (skops records functions and classes by such names and imports them when loading)."""
    import sys

    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        if module.__name__ == "__main__":
            return False
        obj: Any = module
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return False
        return True
    return False


class SkopsMaterializer(Materializer):
    """A scikit-learn estimator (pipelines and custom estimators too) with skops, as
    ``model.skops`` plus ``trusted.json``: not a pickle, so loading runs no code named in
    the file (needs ``skops``: ``pip install 'pipeledger[sklearn]'``).

    skops loads only types it trusts, plus those passed as ``trusted``. Saving records
    the types this very estimator needs beyond skops' defaults (e.g.
    ``sklearn.tree._tree.Tree`` for forests) in ``trusted.json`` and the artifact's
    metadata; loading passes exactly that list, never ``trusted=True``. Since the list
    comes from the files, they are checked against the recorded content hash first
    (``verify_before_load``): a file changed after it was recorded is refused.
    An estimator skops cannot save, or could not load back (it refers to a lambda, a
    local function or anything defined in ``__main__``), falls through to pickle.
    """

    artifact_type = "Model"
    verify_before_load = True

    def __init__(self) -> None:
        import threading

        import sklearn.base

        self._dumped = threading.local()  # can_save's result, reused by the save that follows
        type(self).handled_types = (sklearn.base.BaseEstimator,)

    @property
    def _sio(self) -> Any:
        """``skops.io``, imported when an estimator is first saved or loaded (not to check a
        cache hit's materializer version: importing skops takes longer than a cached run)."""
        import skops.io

        return skops.io

    def _dump(self, value: Any) -> tuple[bytes, list[str]]:
        dumped = getattr(self._dumped, "value", None)
        self._dumped.value = None
        if dumped is not None and dumped[0] is value:
            return dumped[1], dumped[2]
        data = self._sio.dumps(value)
        return data, list(self._sio.get_untrusted_types(data=data))

    def can_save(self, value: Any) -> bool:
        if not isinstance(value, self.handled_types):
            return False
        try:
            data, trusted = self._dump(value)
        except Exception:  # skops cannot represent it: pickle takes it
            return False
        if not all(_importable(name) for name in trusted):
            return False  # skops would save it but not load it back (e.g. a lambda)
        self._dumped.value = (value, data, trusted)
        return True

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        from pipeledger.environment import package_versions

        data, trusted = self._dump(value)
        with fs.open(f"{path}/model.skops", "wb") as f:
            f.write(data)
        with fs.open(f"{path}/trusted.json", "w", encoding="utf-8") as f:
            json.dump({"trusted": trusted}, f)
        packages = package_versions([type(value).__module__, "sklearn", "skops"])
        return {"trusted_types": list(trusted), "packages": dict(packages)}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        with fs.open(f"{path}/trusted.json", "r", encoding="utf-8") as f:
            trusted = json.load(f)["trusted"]
        if not (isinstance(trusted, list) and all(isinstance(t, str) for t in trusted)):
            raise MaterializerError(f"{path}/trusted.json is not a list of type names")
        with fs.open(f"{path}/model.skops", "rb") as f:
            return self._sio.loads(f.read(), trusted=trusted)
