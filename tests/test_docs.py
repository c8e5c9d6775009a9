"""Every example in the README and docs/ runs: Python blocks execute in order in one
namespace per document, and ``$ pipeledger ...`` lines of console blocks run after the
Python that precedes them and must succeed. The Python blocks of each document also run
as one script, ``python file.py``, as a user pasting them would run them."""

from __future__ import annotations

import linecache
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeledger.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str, int]]:
    text = path.read_text()
    return [(m.group(1), m.group(2), text[: m.start()].count("\n") + 2) for m in BLOCK.finditer(text)]


@pytest.fixture
def example_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the example flavor module importable, as the docs tell users to."""
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "custom_flavor"))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_run(doc: Path, example_paths: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples run as a real (importable) module, as a user's script or package would.
    module = types.ModuleType(f"doc_{doc.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = 0
    for language, code, line in blocks(doc):
        if language == "python":
            filename = f"{doc}:{line}"
            source = "\n" * (line - 1) + code
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            exec(compile(source, filename, "exec"), namespace)
            ran += 1
        elif language == "console":
            for command in code.splitlines():
                if not command.startswith("$ pipeledger "):
                    continue
                command = command.replace("/tmp/", f"{tmp_path}/")
                args = shlex.split(command.removeprefix("$ pipeledger ").split("#")[0])
                result = CliRunner().invoke(cli, args, catch_exceptions=False)
                assert result.exit_code == 0, f"{doc.name}:{line}: {command}\n{result.output}"
                ran += 1
    if doc.name not in ("concepts.md", "architecture.md"):
        assert ran, f"{doc.name} has no example to run"


SCRIPTED = [doc for doc in DOCS if any(language == "python" for language, _, _ in blocks(doc))]
CLI_HELPER = """
import shlex

from click.testing import CliRunner

from pipeledger.cli.main import cli


def run(command: str, where: str) -> None:
    result = CliRunner().invoke(cli, shlex.split(command), catch_exceptions=False)
    assert result.exit_code == 0, f"{where}: pipeledger {command}\\n{result.output}"
"""


@pytest.mark.parametrize("doc", SCRIPTED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_run_as_a_script(doc: Path, tmp_path: Path) -> None:
    """The document pasted into one file runs with ``python file.py``: its Python blocks, and its
    ``$ pipeledger ...`` lines as in-process CLI calls where they stand. The module is then
    ``__main__`` (e.g. ``pipeledger.rerun(run)`` and ``run rerun`` in it must not run the script again)."""
    lines: list[str] = []
    for language, code, line in blocks(doc):
        if language not in ("python", "console"):
            continue
        lines.extend([""] * (line - 1 - len(lines)))  # the script's line numbers are the document's
        for offset, text in enumerate(code.splitlines()):
            if language == "python":
                lines.append(text)
            elif text.startswith("$ pipeledger "):
                command = text.removeprefix("$ pipeledger ").split("#")[0].replace("/tmp/", f"{tmp_path}/")
                lines.append(f"__import__('doc_cli').run({command!r}, {f'{doc.name}:{line + offset}'!r})")
            else:
                lines.append("")
    (tmp_path / "doc_cli.py").write_text(CLI_HELPER)
    script = tmp_path / f"{doc.stem.replace('-', '_')}_example.py"
    script.write_text("\n".join(lines) + "\n")
    paths = [str(ROOT / "examples" / "custom_flavor"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run(
        [sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{doc.name} as a script:\n{done.stdout}\n{done.stderr}"


def test_custom_flavor_doc_shows_the_tested_example_verbatim() -> None:
    doc = (ROOT / "docs" / "custom-flavors.md").read_text()
    source = (ROOT / "examples" / "custom_flavor" / "url_store.py").read_text()
    assert ("```python\n" + source + "```") in doc
