"""Settings read from the environment, with their defaults.

| variable | default | meaning |
|---|---|---|
| ``PIPELEDGER_HOME`` | the user config dir | configuration and default data |
| ``PIPELEDGER_QUIET`` | unset | no progress display |
| ``PIPELEDGER_HEARTBEAT_INTERVAL`` | ``10`` | seconds between a running run's heartbeats |
| ``PIPELEDGER_HEARTBEAT_TIMEOUT`` | ``60`` | a running run without a heartbeat for this long reads as ``crashed`` |
"""

from __future__ import annotations

import os

from pipeledger.exceptions import ConfigError


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"${name} must be positive, got {raw}")
    return value


def heartbeat_interval() -> float:
    """Seconds between heartbeats of a running run."""
    return _seconds("PIPELEDGER_HEARTBEAT_INTERVAL", 10.0)


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a running run is considered crashed."""
    return max(_seconds("PIPELEDGER_HEARTBEAT_TIMEOUT", 60.0), 2 * heartbeat_interval())
