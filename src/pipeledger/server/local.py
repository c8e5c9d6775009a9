"""``pipeledger ui``: the web UI of one person's store, served on 127.0.0.1 only.

The same application as ``pipeledger server`` (:func:`pipeledger.server.app.create_app`), on the
loopback interface, for the active (or a given) stack's metadata store; a ``rest`` store (another
server) is read through its client. No authentication: nothing but this machine can connect.
"""

from __future__ import annotations

import socket
import threading
import webbrowser
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def serve_ui(stack: str | None, port: int | None, open_browser: bool, announce: Callable[[str], None] = print) -> None:
    """Serve the UI of ``stack``'s store (the active stack's by default) on ``127.0.0.1:port`` (a
    free port when None) until interrupted; ``announce`` gets the URL once listening, and the
    browser opens it unless ``open_browser`` is false. The store is opened first, so a store that
    cannot be opened is one error, before anything listens."""
    import uvicorn

    from pipeledger.server.app import create_app
    from pipeledger.stack.stack import build_stack

    built = build_stack(stack)
    built.metadata_store.list_pipelines(limit=1)  # fails here, with the store's error, if unusable
    app = create_app(lambda: built.metadata_store, built.artifact_store)
    chosen = port or free_port()
    url = f"http://{LOOPBACK}:{chosen}/ui/runs"
    config = uvicorn.Config(app, host=LOOPBACK, port=chosen, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    def when_ready() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            announce(url)
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=when_ready, name="pipeledger-ui-announce", daemon=True).start()
    server.run()
