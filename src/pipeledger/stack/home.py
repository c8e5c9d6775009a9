"""Where pipeledger keeps its configuration and default data: ``$PIPELEDGER_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "PIPELEDGER_HOME"


def pipeledger_home() -> Path:
    """``$PIPELEDGER_HOME`` if set, else the platform's user config directory for pipeledger
    (``~/.config/pipeledger`` on Linux)."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_config_dir("pipeledger", appauthor=False))


def ensure_home(home: Path) -> None:
    """Create the home directory private to the user (``0700``, whatever the umask), or remove
    the group and other permissions of an existing one (owned by the user): it holds the
    configuration and the default stores."""
    from pipeledger.permissions import PRIVATE, ensure_dir

    ensure_dir(home, PRIVATE)
