"""The store contract suite of :mod:`pipeledger.testing`, run on our own backends: SQLite,
MariaDB/MySQL, PostgreSQL (each with the driver-cursor fast path on, and off: SQLite always,
the servers under ``make stress``, ``PIPELEDGER_STRESS=1``) and the kubeflow flavor on ML
Metadata's test service (:mod:`tests.mlmd_service`).

Add a backend in :func:`tests.servers.open_empty_store`; every contract test then runs on it.
Tests of the SQL implementation itself (schema, statements) are in ``tests/test_sql_store.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.testing import MetadataStoreContract
from tests.servers import SQL_BACKENDS, contract_backends, open_empty_store

#: Read when a SQL ``Database`` is created: "0" or "off" makes it use SQLAlchemy Core only.
FAST_PATH_VARIABLE = "PIPELEDGER_FAST_PATH"
#: The Core-only path on MariaDB and PostgreSQL too (``make stress``): the statements are the
#: same on every dialect, so ``make test`` runs it on SQLite only.
STRESS = os.environ.get("PIPELEDGER_STRESS") == "1"


def _variants() -> list[object]:
    params: list[object] = []
    for backend in contract_backends():
        params.append(pytest.param((backend, True), id=backend))
        if backend in SQL_BACKENDS and (backend == "sqlite" or STRESS):
            params.append(pytest.param((backend, False), id=f"{backend}-fastpath-off"))
    return params


class TestStoreContract(MetadataStoreContract):
    """Every contract test on every backend; the SQL ones once with the fast path, once without."""

    @pytest.fixture(params=_variants())
    def store(
        self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[MetadataStore]:
        """An empty metadata store on each backend."""
        backend, fast_path = request.param
        if fast_path:
            monkeypatch.delenv(FAST_PATH_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(FAST_PATH_VARIABLE, "0")
        opened = open_empty_store(backend, tmp_path, request)
        database = getattr(opened, "db", None)
        if hasattr(database, "fast_path"):  # SQL stores once the fast-path switch exists (Database.fast_path)
            assert database.fast_path is fast_path, f"{FAST_PATH_VARIABLE} did not switch the fast path"
        yield opened
        opened.close()
