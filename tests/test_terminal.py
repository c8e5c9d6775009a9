"""The live progress display on a real pseudo-terminal.

A pipeline runs as a script whose standard streams are the slave side of a pty, as
in an interactive shell; what it writes is fed to a terminal emulator (pyte), so the
assertions are about the screen a person sees, not the bytes. Regression: steps that
printed while the live table showed made the display and the output capture feed
each other, and the run never finished.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pyte
import pytest

from pipeledger import Client

ROWS, COLUMNS = 200, 120

SCRIPT = textwrap.dedent(
    """
    import logging
    import sys
    import warnings

    from pipeledger import pipeline, step


    @step
    def talk() -> int:
        print("out: hello")
        print("err: hello", file=sys.stderr)
        logging.getLogger("user.code").warning("log: careful")
        logging.getLogger("user.code").info("log: detail")
        warnings.warn("warn: deprecated thing", UserWarning)
        sys.stdout.write("partial ")
        sys.stdout.flush()
        sys.stdout.write("line\\n")
        sys.stdout.write("progress 10%\\rprogress 50%\\rprogress 100%\\n")
        sys.stdout.write("no newline at the end")
        return 1


    @step
    def quiet(x: int) -> int:
        return x + 1


    @step
    def shout(x: int) -> None:
        print("second step speaks")


    @pipeline
    def chatty():
        shout(quiet(talk()))


    if __name__ == "__main__":
        chatty()
        print("script done")
    """
)


def run_on_pty(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, bytes]:
    """Run ``args`` with a pty as stdin/stdout/stderr; its exit code and everything it wrote.

    Fails the test (after killing the process) if it does not finish within ``timeout``.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"no exit within {timeout} s on a terminal; last output: {bytes(output[-500:])!r}")
            ready, _, _ = select.select([master], [], [], min(remaining, 1.0))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed, the process is gone
                    chunk = b""
                if not chunk:
                    break
                output.extend(chunk)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), bytes(output)
    finally:
        os.close(master)


def screen_lines(output: bytes) -> list[str]:
    """The lines a terminal shows after receiving ``output`` (trailing blanks stripped)."""
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.fixture
def script_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("PIPELEDGER_QUIET", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "PIPELEDGER_QUIET"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env.update(TERM="xterm-256color", PYTHONPATH=src + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return env


def test_steps_that_print_log_and_warn_finish_on_a_terminal(tmp_path: Path, script_env: dict[str, str]) -> None:
    script = tmp_path / "chatty.py"
    script.write_text(SCRIPT)

    code, output = run_on_pty([sys.executable, str(script)], tmp_path, script_env)

    lines = screen_lines(output)
    shown = "\n".join(lines)
    assert code == 0, shown
    # The progress table is drawn once, in its final state, after the steps' output.
    for expected in (
        "out: hello",
        "err: hello",
        "log: careful",
        "partial line",
        "progress 100%",
        "no newline at the end",
        "second step speaks",
        "script done",
    ):
        assert sum(expected in line for line in lines) == 1, (expected, shown)
    assert sum("UserWarning: warn: deprecated thing" in line for line in lines) == 1, shown
    assert "log: detail" not in shown  # INFO goes to the step's logs only, as without pipeledger
    assert "progress 10%" not in shown and "progress 50%" not in shown
    assert sum("chatty run chatty-1" in line for line in lines) == 1, shown
    title = next(line for line in lines if "chatty run chatty-1" in line)
    assert "completed in" in title
    for step in ("talk", "quiet", "shout"):
        rows = [line.split() for line in lines if line.split()[:1] == [step]]
        assert len(rows) == 1 and rows[0][1] == "completed", (step, shown)
    # the table comes after the output of both steps
    assert lines.index(title) > max(i for i, line in enumerate(lines) if "second step speaks" in line)

    steps = Client().get_run("chatty-1").steps
    logs = steps["talk"].logs
    assert logs.startswith("out: hello\nerr: hello\n")
    assert "WARNING user.code: log: careful\n" in logs
    assert "INFO user.code: log: detail\n" in logs
    assert "UserWarning: warn: deprecated thing" in logs
    assert logs.endswith("partial line\nprogress 10%\rprogress 50%\rprogress 100%\nno newline at the end")
    assert "duration" not in logs and "pending" not in logs  # nothing of the progress table
    assert steps["quiet"].logs in ("", None)
    assert steps["shout"].logs == "second step speaks\n"


def test_the_quickstart_finishes_on_a_terminal(tmp_path: Path, script_env: dict[str, str]) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"

    code, output = run_on_pty([sys.executable, str(example)], tmp_path, script_env)

    lines = screen_lines(output)
    assert code == 0, "\n".join(lines)
    assert sum(line.startswith("cancer_classifier run cancer_classifier-1") for line in lines) == 1
    assert any("completed in" in line for line in lines)


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import time

    from pipeledger import pipeline, step
    from pipeledger.stack.flavor import ComponentType
    from pipeledger.stack.manager import StackManager


    @step
    def start() -> int:
        return 1


    @step
    def slow(x: int, index: int = 0) -> int:
        print(f"slow {index} speaks")
        time.sleep(1.5)
        return x + index


    @pipeline
    def wide():
        x = start()
        for i in range(3):
            slow(x, index=i, id=f"slow_{i}")


    if __name__ == "__main__":
        manager = StackManager()
        manager.register_component(ComponentType.ORCHESTRATOR, "par", "local", {"max_parallelism": "3"})
        manager.register_stack("par", "par", "default", "default")
        manager.set_active_stack("par")
        wide()
        print("script done")
    """
)


def test_the_live_display_shows_steps_running_together(tmp_path: Path, script_env: dict[str, str]) -> None:
    script = tmp_path / "wide.py"
    script.write_text(PARALLEL_SCRIPT)

    code, output = run_on_pty([sys.executable, str(script)], tmp_path, script_env)

    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    most_running = 0
    for piece in output.split(b"\x1b[2K"):  # each screen a person saw: the table before a redraw
        stream.feed(piece)
        rows = [line.split() for line in screen.display]
        running = sum(len(r) > 1 and r[0].startswith("slow_") and r[1] == "running" for r in rows)
        most_running = max(most_running, running)
        stream.feed(b"\x1b[2K")
    lines = screen_lines(output)
    shown = "\n".join(lines)
    assert code == 0, shown
    assert most_running == 3, shown
    for i in range(3):
        assert sum(f"slow {i} speaks" in line for line in lines) == 1, shown
        rows = [line.split() for line in lines if line.split()[:1] == [f"slow_{i}"]]
        assert len(rows) == 1 and rows[0][1] == "completed", shown
    assert Client().get_run("wide-1").steps["slow_2"].logs == "slow 2 speaks\n"
