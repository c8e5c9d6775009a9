"""Pipelines the UI's browser tests record: ordinary runs, a failing run, one run full of hostile
names (HTML and JavaScript in every user-supplied string), long logs, and a slow run that is
still running while a test watches it.

``python -m tests.ui.recorded KIND`` records them on the active stack (the tests run it with the
served stack's home, so the runs land in the database the server reads).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated

from pipeledger import Client, log_metadata, pipeline, step
from pipeledger.exceptions import RunFailedError
from tests.pipelines import failing, training

#: The strings that must render as text everywhere.
SCRIPT = "<script>window.__pwned=1</script>"
ATTRIBUTE = '"onmouseover="window.__pwned=2" x="'
IMAGE = "<img src=x onerror=window.__pwned=3>"
JAVASCRIPT_URL = "javascript:window.__pwned=4"
HOSTILE_RUN = f"run {SCRIPT}"
HOSTILE_PIPELINE = f"pipe{IMAGE}"
HOSTILE_STEP = f"step{ATTRIBUTE}"
HOSTILE_OUTPUT = f"out{IMAGE}"
HOSTILE_TAG = f"tag{SCRIPT}"
LOG_LINES = 3000


@step(name=HOSTILE_STEP)
def hostile_step(text: str = SCRIPT) -> Annotated[dict, HOSTILE_OUTPUT]:
    """Doc with <b>markup</b> and <script>window.__pwned=5</script>."""
    print(f"log line {SCRIPT} {IMAGE} {JAVASCRIPT_URL}")
    log_metadata(**{SCRIPT: ATTRIBUTE, "link": JAVASCRIPT_URL, "score": 0.5})
    return {"value": text, "url": JAVASCRIPT_URL}


@pipeline(name=HOSTILE_PIPELINE)
def hostile(text: str = SCRIPT, url: str = JAVASCRIPT_URL):
    hostile_step(text=text)


@step
def chatty(lines: int = LOG_LINES) -> int:
    """Print many numbered lines (more than one page of logs)."""
    for n in range(1, lines + 1):
        print(f"line {n:05d} of the chatty step {'x' * 40}")
    print("needle in the haystack")
    return lines


@pipeline
def talkative(lines: int = LOG_LINES):
    chatty(lines=lines)


@step
def wait_for(flag: str = "", timeout: float = 120.0) -> str:
    """Wait until the file ``flag`` exists (the test creates it when it has seen the run run)."""
    deadline = time.monotonic() + timeout
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("released")
    return flag


@step
def after(flag: str) -> int:
    return len(flag)


@pipeline
def slow(flag: str = ""):
    after(wait_for(flag=flag))


def record_all() -> None:
    """The runs every UI test module reads."""
    for lr in (0.1, 0.2, 0.3):
        training.with_options(tags=["sweep"] if lr > 0.1 else None)(lr=lr)
    training(lr=0.1)  # every step cached
    with contextlib.suppress(RunFailedError):  # the failure is recorded: that is the point
        failing()
    hostile.with_options(run_name=HOSTILE_RUN, tags=[HOSTILE_TAG, JAVASCRIPT_URL])(text=SCRIPT)
    talkative()
    Client().get_run("training-3").add_tags("best")


def record_slow(flag: str) -> None:
    """A run that waits for ``flag`` before it ends."""
    slow.with_options(enable_cache=False)(flag=flag)


if __name__ == "__main__":
    if sys.argv[1] == "all":
        record_all()
    else:
        record_slow(sys.argv[2])
