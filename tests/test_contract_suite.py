"""The shipped contract suite (:mod:`pipeledger.testing`) works outside our test tree, and the
test backends are strict: a backend named in ``PIPELEDGER_TEST_BACKENDS`` that cannot run fails
the run instead of being skipped (see tests/servers.py)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "custom_flavor" / "test_url_store.py"


def pytest_run(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m pytest args`` in a new process (no cache, no plugins from the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_docs_show_the_example_contract_test_verbatim() -> None:
    doc = (ROOT / "docs" / "custom-flavors.md").read_text()
    assert ("```python\n" + EXAMPLE.read_text() + "```") in doc


def test_the_shipped_suite_passes_on_the_example_flavor_outside_our_tests() -> None:
    """What a flavor author runs: no conftest of ours, only the class and a ``store`` fixture."""
    path = os.pathsep.join(p for p in (str(EXAMPLE.parent), os.environ.get("PYTHONPATH", "")) if p)
    done = pytest_run("-q", str(EXAMPLE), env={"PYTHONPATH": path})
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed is not None and int(passed.group(1)) > 100, done.stdout
    assert "skipped" not in done.stdout and "error" not in done.stdout, done.stdout


def test_the_suite_needs_no_sql_and_pipeledger_does_not_import_pytest() -> None:
    """The suite uses only the contract (a REST store must pass it too); pytest stays a test-only
    dependency: ``import pipeledger`` does not import it."""
    code = (
        "import sys, pipeledger, pipeledger.client\n"
        "assert 'pytest' not in sys.modules\n"
        "import pipeledger.testing\n"
        "leaks = [m for m in sys.modules if m.startswith(('sqlalchemy', 'pipeledger.metadata_store.'))]\n"
        "assert leaks == ['pipeledger.metadata_store.base'], leaks\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


def test_a_named_server_that_cannot_be_reached_fails_the_run() -> None:
    url = f"mysql+pymysql://root@127.0.0.1:{closed_port()}/test"
    done = pytest_run(
        "-q",
        "tests/test_sql_store.py::test_created_database_matches_schema_module",
        env={"PIPELEDGER_TEST_BACKENDS": "sqlite,mysql", "PIPELEDGER_TEST_MYSQL_URL": url},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"\b1 passed, 1 error", done.stdout), done.stdout  # sqlite passed
    assert "backend mysql cannot run: cannot connect to mysql+pymysql://root@127.0.0.1:" in done.stdout
    assert (
        "Fix: start it or set PIPELEDGER_TEST_MYSQL_URL, or leave mysql out of PIPELEDGER_TEST_BACKENDS" in done.stdout
    )
    assert "Traceback" not in done.stdout and "During handling" not in done.stdout, done.stdout


def test_a_named_kubeflow_without_ml_metadata_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "ml_metadata").mkdir()  # shadows the installed wheel: as if it were missing
    (tmp_path / "ml_metadata" / "__init__.py").write_text("raise ImportError('no ml-metadata wheel here')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    done = pytest_run(
        "-q",
        "tests/test_store_contract.py",
        "-k",
        "test_count_runs_on_empty_store",
        env={"PIPELEDGER_TEST_BACKENDS": "sqlite,kubeflow", "PYTHONPATH": path},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"2 passed, \d+ deselected, 1 error", done.stdout), done.stdout  # sqlite: fast path on, off
    assert "backend kubeflow cannot run: ml-metadata cannot be imported (no ml-metadata wheel here)" in done.stdout
    assert "or leave kubeflow out of PIPELEDGER_TEST_BACKENDS" in done.stdout


def test_an_unknown_backend_name_is_a_usage_error() -> None:
    done = pytest_run("-q", "tests/test_text.py", env={"PIPELEDGER_TEST_BACKENDS": "sqlite,postgres"})
    assert done.returncode == 4, done.stdout + done.stderr
    assert "PIPELEDGER_TEST_BACKENDS='sqlite,postgres': unknown backend 'postgres'" in done.stderr
