"""A running run's heartbeat: a background thread that records the process is alive."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import utcnow

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``store.heartbeat(run_id)`` every ``interval`` seconds until stopped.

    A failed heartbeat (e.g. the database is briefly unreachable) is logged and
    retried at the next interval; it never fails the run. Use as a context manager.
    """

    def __init__(self, store: MetadataStore, run_id: str, interval: float) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"pipeledger-heartbeat-{run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.heartbeat(self.run_id, utcnow())
            except Exception as exc:  # keep beating; the run itself reports real failures
                log.warning("heartbeat of run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
