"""``pipeledger ui``: serves the pages of the active stack's store on 127.0.0.1, says where, and
stops on Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.pipelines import training
from tests.rest_server import CLI, free_port


def test_pipeledger_ui_serves_the_active_stack_on_loopback(home: Path) -> None:
    training(lr=0.1)
    training(lr=0.2)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "ui", "--no-browser", "--port", str(port)],
        env={**os.environ, "PIPELEDGER_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = next(line for line in process.stdout if line.startswith("pipeledger UI at"))
        assert line.strip() == f"pipeledger UI at http://127.0.0.1:{port}/ui/runs (Ctrl-C to stop)"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/runs?filter=params.lr%20%3E%200.15") as page:
            body = page.read().decode()
            assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert "training-2" in body and "training-1" not in body
    finally:
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130  # Ctrl-C: the CLI's "Interrupted." exit status
