"""The commit-msg hook (.ci/check-commit-msg): subject of at most 72 characters, then an empty line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "check-commit-msg"


def check(message: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "COMMIT_EDITMSG"
    path.write_text(message, encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "message",
    [
        "x" * 72 + "\n",
        "Subject\n\nA body line that is much longer than seventy-two characters, which is fine in a body.\n",
        "\n\nSubject after empty lines\n",
        "Subject\n# " + "a long git comment " * 10 + "\n",
        "Subject\n\n# ------------------------ >8 ------------------------\n" + "diff " * 40 + "\n",
    ],
)
def test_accepted(message: str, tmp_path: Path) -> None:
    done = check(message, tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("x" * 73 + "\n\nbody\n", "the commit subject has 73 characters; keep it to 72"),
        ("Subject\nsecond line right below\n", "leave the second line of the commit message empty"),
    ],
)
def test_refused_with_one_line(message: str, says: str, tmp_path: Path) -> None:
    done = check(message, tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("commit-msg: ") and says in line
