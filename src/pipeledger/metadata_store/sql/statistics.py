"""PostgreSQL's planner statistics kept current while a process grows the store's tables.

PostgreSQL plans a query from statistics that ``ANALYZE`` gathers; autovacuum runs it about
a minute after a table changed by a tenth. Right after a bulk load (a process recording
thousands of steps into young tables) the statistics still describe near-empty tables and the
planner picks sequential scans and hash joins where an index lookup is right: a run view took
20 ms instead of 2. The store does not wait for autovacuum:

* every process counts its write transactions and, at 500, 1,000, 2,000, ... (each time the
  count doubles, so at most ~20 times in a process's life), runs ``ANALYZE`` of the store's
  tables in a background thread on its own pooled connection: recording never waits for it,
  and ``ANALYZE`` takes no lock that blocks reads or writes;
* when the store is opened, the tables are analysed the same way if PostgreSQL's own counters
  (``pg_stat_user_tables``) show one that has grown by half since it was last analysed, or was
  never analysed, with at least 1,000 rows (a store loaded by other processes, an import).

``ANALYZE`` samples at most 300 × ``default_statistics_target`` rows per table (30,000 by
default), so it costs tens of milliseconds whatever the tables' size. A failure (a lost
connection, a missing privilege) is logged at debug level and ignored: statistics are an
optimisation, autovacuum remains.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import bindparam, text

from pipeledger.metadata_store.sql.engine import Database
from pipeledger.metadata_store.sql.schema import metadata

log = logging.getLogger(__name__)

#: Write transactions of this process before its first ``ANALYZE``; each next one when the count doubles.
FIRST_AFTER = 500
#: Rows a table needs at open before its missing or stale statistics matter.
MIN_ROWS = 1000

_STALE = text(
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname IN :names "
    "AND n_live_tup >= :min_rows AND (coalesce(last_analyze, last_autoanalyze) IS NULL "
    "OR n_mod_since_analyze * 2 > n_live_tup)"
).bindparams(bindparam("names", expanding=True))


class PlannerStatistics:
    """Runs ``ANALYZE`` of the store's tables in the background when they grew (see the module)."""

    def __init__(self, database: Database, *, first_after: int = FIRST_AFTER) -> None:
        self.database = database
        self.tables = sorted(metadata.tables)
        self.writes = 0
        self.next_at = first_after
        self.analyses = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Count ``database``'s write transactions from now on, and analyse at once if the tables'
        statistics are missing or stale."""
        self.database.after_write = self.written
        self._start(check_first=True)

    def written(self) -> None:
        """One write transaction committed (called by :class:`Database`)."""
        self.writes += 1
        if self.writes >= self.next_at:
            self.next_at = self.writes * 2
            self._start(check_first=False)

    def join(self, timeout: float | None = None) -> None:
        """Wait for a running ``ANALYZE`` (tests; closing)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _start(self, *, check_first: bool) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return  # one at a time: the next threshold starts the next
            self._thread = threading.Thread(
                target=self._analyze, args=(check_first,), name="pipeledger-analyze", daemon=True
            )
            self._thread.start()

    def _analyze(self, check_first: bool) -> None:
        try:
            with self.database.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                tables = self.tables
                stale = {"names": tables, "min_rows": MIN_ROWS}
                if check_first and not conn.execute(_STALE, stale).first():
                    return  # nothing grown since PostgreSQL last analysed it
                conn.exec_driver_sql("ANALYZE " + ", ".join(tables))
                self.analyses += 1
        except Exception as exc:  # an optimisation: never the caller's failure
            log.debug("ANALYZE of %s failed: %s", self.database.display_name, exc)
