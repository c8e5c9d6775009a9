"""Slowing down password guessing from one address, in the memory of one server process.

The store locks a user after repeated failures (:meth:`Directory.login`); that alone lets an
attacker try a few passwords for every user. :class:`FailureLimiter` also counts the failed logins
of each client address over a sliding window and refuses that address's logins once there were
too many, whichever users they named; a success does not reset the count (an attacker with one
account of its own could reset it between guesses). (Each worker process counts on its own; behind a proxy the
address is the proxy's unless the server is told to trust forwarded headers.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most ``limit`` failures per address within ``window`` seconds.

    Args:
        limit: failures allowed in the window; the next attempt is refused.
        window: seconds a failure counts.
        clock: monotonic seconds (tests pass another).
        max_addresses: addresses remembered (the oldest forgotten first), bounding the memory.
    """

    def __init__(
        self,
        limit: int = 20,
        window: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may try now."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return None
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return None
            return failures[0] + self.window - now

    def failed(self, address: str) -> None:
        """Count a failed attempt of ``address``."""
        now = self.clock()
        with self._lock:
            failures = self._failures.pop(address, None) or deque()
            failures.append(now)
            self._failures[address] = failures  # most recent last
            while len(self._failures) > self.max_addresses:
                del self._failures[next(iter(self._failures))]
