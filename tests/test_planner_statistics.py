"""PostgreSQL: the store keeps the planner's statistics current itself (``sql/statistics.py``),
so a run view right after a bulk load does not wait for autovacuum to plan with indexes.

Checked through PostgreSQL's own record of ``ANALYZE`` runs (``pg_stat_user_tables``), never by
timing the queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from pipeledger.metadata_store.sql import SqlMetadataStore
from pipeledger.metadata_store.sql.statistics import PlannerStatistics
from pipeledger.models import RunCreate
from tests.servers import enabled_backends, open_server_store, scratch_database

pytestmark = pytest.mark.skipif("postgresql" not in enabled_backends(), reason="needs the postgresql backend")


@pytest.fixture
def database() -> Iterator[URL]:
    with scratch_database("postgresql") as url:
        yield url


def analysed(url: URL, table: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
            ).scalar()
    finally:
        engine.dispose()
    return found is not None


def statistics_of(store: SqlMetadataStore) -> PlannerStatistics:
    hook = store.db.after_write
    assert hook is not None, "the postgresql flavor installs the statistics keeper"
    keeper = getattr(hook, "__self__", None)
    assert isinstance(keeper, PlannerStatistics)
    return keeper


def test_a_process_that_grows_the_tables_analyses_them_when_its_writes_double(database: URL, tmp_path: Path) -> None:
    store = open_server_store("postgresql", database, tmp_path)
    assert isinstance(store, SqlMetadataStore)
    keeper = statistics_of(store)
    keeper.join()
    assert not analysed(database, "pipeline_runs")  # an empty store: nothing to analyse at open
    keeper.next_at = keeper.writes + 3  # the threshold a long recording reaches, brought near
    for n in range(3):
        store.create_run(RunCreate(pipeline_name="p", name=f"run-{n}"))
    keeper.join()
    assert keeper.analyses == 1
    assert analysed(database, "pipeline_runs")
    assert keeper.next_at == 2 * keeper.writes  # the next one when the count has doubled again
    store.close()


def test_opening_a_store_whose_tables_grew_unanalysed_analyses_them(database: URL, tmp_path: Path) -> None:
    open_server_store("postgresql", database, tmp_path).close()  # the schema
    engine = create_engine(database)
    with engine.begin() as conn:  # a bulk load by someone else, before autovacuum's turn
        conn.execute(
            text(
                "INSERT INTO pipelines (id, name, created_at) "
                "SELECT md5(g::text), 'p' || g, now() FROM generate_series(1, 1500) AS g"
            )
        )
    with engine.connect() as conn:  # make PostgreSQL's counters see the rows now, not within a second
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
        conn.execute(text("SELECT 1"))
        conn.commit()
    engine.dispose()
    assert not analysed(database, "pipelines")
    store = open_server_store("postgresql", database, tmp_path)
    assert isinstance(store, SqlMetadataStore)
    statistics_of(store).join()
    assert analysed(database, "pipelines")
    store.close()
