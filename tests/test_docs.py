"""Every example in the README and docs/ runs: Python blocks execute in order in one
namespace per document, and ``$ pipeledger ...`` lines of console blocks run after the
Python that precedes them and must succeed."""

from __future__ import annotations

import linecache
import re
import shlex
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


def test_custom_flavor_doc_shows_the_tested_example_verbatim() -> None:
    doc = (ROOT / "docs" / "custom-flavors.md").read_text()
    source = (ROOT / "examples" / "custom_flavor" / "url_store.py").read_text()
    assert ("```python\n" + source + "```") in doc
