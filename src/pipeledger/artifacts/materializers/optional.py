"""Materializers for third-party types, active only when their library is installed."""

from __future__ import annotations

import importlib
import json
from typing import Any

from pydantic import BaseModel

from pipeledger.artifacts.materializers.base import Materializer
from pipeledger.exceptions import MaterializerError
from pipeledger.models import JSON


class PydanticMaterializer(Materializer):
    """A pydantic model as ``model.json`` plus the model class's import path."""

    handled_types = (BaseModel,)

    def save(self, value: Any, fs: Any, path: str) -> dict[str, JSON]:
        cls = type(value)
        with fs.open(f"{path}/model.json", "w", encoding="utf-8") as f:
            f.write(value.model_dump_json())
        with fs.open(f"{path}/class.json", "w", encoding="utf-8") as f:
            json.dump({"class": f"{cls.__module__}:{cls.__qualname__}"}, f)
        return {}

    def load(self, fs: Any, path: str, data_type: type | None) -> Any:
        cls = data_type
        if cls is None or not issubclass(cls, BaseModel):
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
            cls = obj
        with fs.open(f"{path}/model.json", "r", encoding="utf-8") as f:
            return cls.model_validate_json(f.read())


class NumpyMaterializer(Materializer):
    """A numpy array as ``array.npy`` (no pickle; object arrays fall through to pickle)."""

    artifact_type = "Data"

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


class PandasMaterializer(Materializer):
    """A pandas DataFrame or Series as Parquet (needs pyarrow; else it falls through to pickle)."""

    artifact_type = "Dataset"

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
