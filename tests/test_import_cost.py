"""``import pipeledger`` stays light: heavy libraries are imported when first used, not at import.

Checked structurally (which modules a fresh interpreter has loaded), never by timing; the time
itself is measured by ``benchmarks/imports.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Libraries that take tens of milliseconds each to import (``email``: what ``importlib.metadata`` loads).
HEAVY = ["sqlalchemy", "alembic", "pydantic", "fsspec", "rich", "click", "cloudpickle", "yaml", "asyncio", "email"]

SRC = str(Path(__file__).resolve().parents[1] / "src")


def loaded_after(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "statement",
    ["import pipeledger", "from pipeledger import step, pipeline, Status, PipeledgerError"],
)
def test_importing_the_api_to_define_a_pipeline_loads_no_heavy_library(statement: str) -> None:
    assert loaded_after(statement) & set(HEAVY) == set()


def test_the_lazy_names_resolve_to_the_objects_of_their_modules() -> None:
    import pipeledger
    from pipeledger.client import Client
    from pipeledger.reproduce import rerun

    assert pipeledger.Client is Client
    assert pipeledger.rerun is rerun
    assert set(pipeledger.__all__) <= set(dir(pipeledger))
    for name in pipeledger.__all__:
        assert getattr(pipeledger, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    import pipeledger

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = pipeledger.nope  # type: ignore[attr-defined]


def test_creating_or_opening_a_current_store_loads_no_alembic(tmp_path: Path) -> None:
    """Alembic (and Mako) are for upgrading a schema: a process that creates a store, or opens
    one whose schema is current (every CLI command, every run), never imports them."""
    path = tmp_path / "metadata.db"
    open_store = (
        "from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store\n"
        f"store = open_sqlite_store(SqliteMetadataStoreConfig(path={str(path)!r}))\n"
        "store.list_pipelines()\n"
        "store.close()"
    )
    assert loaded_after(open_store) & {"alembic", "mako"} == set()  # a new file: the schema is created
    assert path.exists()
    assert loaded_after(open_store) & {"alembic", "mako"} == set()  # the file exists: opened
