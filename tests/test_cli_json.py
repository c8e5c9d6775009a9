"""``--json`` on every ``list``, ``show`` and ``describe`` command: valid JSON, the documented
shapes (docs/cli-json.md), and never a secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pipeledger import RunFailedError
from pipeledger.cli.main import cli
from tests import pipelines as P

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli-json.md"
JSON_VERBS = {"list", "show", "describe"}
SECRET = "s3cret-value-never-shown"
# Values for the required arguments of the commands under test, by argument name and command.
ARGUMENTS = {
    ("metadata-store", "describe"): ["prod"],
    ("artifact-store", "describe"): ["default"],
    ("orchestrator", "describe"): ["default"],
    ("metadata-store", "flavor", "describe"): ["mysql"],
    ("artifact-store", "flavor", "describe"): ["local"],
    ("orchestrator", "flavor", "describe"): ["local"],
    ("artifact", "show"): ["training-1/train/model"],
}


def commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


#: Commands that talk to a pipeledger server's identity routes: their --json output is checked
#: against a real server in tests/test_identity_cli.py.
SERVER_COMMANDS = {
    ("user", "list"),
    ("api-key", "list"),
    ("project", "list"),
    ("project", "member", "list"),
    ("audit", "list"),  # its shape: tests/test_audit.py
}
JSON_COMMANDS = [(path, command) for path, command in commands() if path[-1] in JSON_VERBS]


def invoke_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, f"`pipeledger {' '.join(args)} --json` failed: {result.output}"
    return json.loads(result.stdout)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs (the second cached), and a stack whose metadata store has a secret reference."""
    monkeypatch.setenv("PW_FOR_TEST", SECRET)
    P.training(lr=0.5)
    P.training(lr=0.5)
    runner = CliRunner()
    for args in (
        ["metadata-store", "register", "prod", "--flavor=mysql", "--database=x", "--password=${env:PW_FOR_TEST}"],
        ["stack", "register", "prod", "-m", "prod"],
    ):
        assert runner.invoke(cli, args).exit_code == 0


def test_the_json_commands_are_found() -> None:
    """The enumeration below is not vacuous: it finds the commands it must cover."""
    paths = {path for path, _ in JSON_COMMANDS}
    assert {("run", "list"), ("run", "show"), ("pipeline", "list"), ("cache", "list")} <= paths
    assert {("stack", "list"), ("stack", "describe")} <= paths
    for noun in ("metadata-store", "artifact-store", "orchestrator"):
        assert {(noun, "list"), (noun, "describe"), (noun, "flavor", "list"), (noun, "flavor", "describe")} <= paths


@pytest.mark.parametrize(("path", "command"), JSON_COMMANDS, ids=lambda p: " ".join(p) if isinstance(p, tuple) else "")
def test_every_list_show_describe_command_prints_json(
    recorded: None, path: tuple[str, ...], command: click.Command
) -> None:
    """A new list/show/describe command without --json fails here."""
    assert any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params), (
        f"`pipeledger {' '.join(path)}` has no --json option"
    )
    if path in SERVER_COMMANDS:
        assert " ".join(path) in documented_fields(), f"docs/cli-json.md does not document `{' '.join(path)}`"
        return
    required = [p for p in command.params if isinstance(p, click.Argument) and p.required]
    assert not required or path in ARGUMENTS, f"give an example argument for `{' '.join(path)}` in ARGUMENTS"
    result = CliRunner().invoke(cli, [*path, *ARGUMENTS.get(path, []), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert isinstance(value, (list, dict)) and value
    assert SECRET not in result.output
    documented = documented_fields()
    component = path[0] in ("metadata-store", "artifact-store", "orchestrator")
    key = " ".join(("NOUN", *path[1:]) if component else path)
    assert key in documented, f"docs/cli-json.md does not document `{' '.join(path)}`"
    item = value[0] if isinstance(value, list) else value
    assert list(item) == documented[key], f"`{' '.join(path)} --json` keys differ from docs/cli-json.md"


def documented_fields() -> dict[str, list[str]]:
    """Each ``### `command``` section of docs/cli-json.md (``NOUN`` for the three component
    nouns) and the fields its first table lists, in order."""
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### `([A-Za-z -]+)`", line)
        if heading:
            current = heading.group(1).strip()
            fields[current] = []
            continue
        if line.startswith("#"):
            current = None
        row = re.match(r"^\| `([a-z_]+)` \|", line)
        if current is not None and row:
            fields[current].append(row.group(1))
        elif current is not None and fields[current] and not line.startswith("|"):
            current = None  # the first table ended
    return fields


def test_run_list_and_show_shapes(recorded: None) -> None:
    runs = invoke_json("run", "list")
    assert [r["name"] for r in runs] == ["training-2", "training-1"]
    assert runs[0]["status"] == "completed" and runs[0]["pipeline"] == "training" and runs[0]["number"] == 2
    assert runs[0]["start_time"].endswith("+00:00") and isinstance(runs[0]["duration_seconds"], float)
    assert [r["name"] for r in invoke_json("run", "list", "--pipeline", "training", "--limit", "1")] == ["training-2"]

    run = invoke_json("run", "show", "training-2")
    assert run["parameters"] == {"lr": 0.5, "n_rows": 4} and run["error"] is None and run["not_run"] == []
    assert [s["name"] for s in run["steps"]] == ["load", "train", "evaluate"]
    train = run["steps"][1]
    assert train["status"] == "cached" and train["cache_explanation"].startswith("cache hit")
    assert train["cached_from"]["run"] == "training-1" and train["cached_from"]["step"] == "train"
    model = train["outputs"]["model"]
    assert set(model) == {"id", "uri", "type", "data_type", "size", "content_hash", "created_at"}
    assert "/training/training-1-" in model["uri"]  # reused from the first run
    assert train["metadata"] == {"accuracy": 1.0, "rows": 4} and run["steps"][2]["metadata"] == {"evaluated": True}
    assert invoke_json("run", "show")["name"] == "training-2"  # the latest run


def test_run_show_json_with_a_graph_keeps_stdout_json(recorded: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "show", "training-1", "--json", "--graph", str(tmp_path / "g.dot")])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["name"] == "training-1"
    assert "Wrote" in result.stderr and (tmp_path / "g.dot").read_text().startswith("digraph")


def test_empty_lists_are_empty_arrays() -> None:
    assert invoke_json("run", "list") == []
    assert invoke_json("pipeline", "list") == []
    assert invoke_json("cache", "list") == []


def test_pipeline_cache_and_stack_shapes(recorded: None) -> None:
    (pipeline,) = invoke_json("pipeline", "list")
    assert pipeline["name"] == "training" and pipeline["runs"] == 2 and pipeline["latest_run"]["name"] == "training-2"

    entries = invoke_json("cache", "list", "--step", "train")
    assert [(e["run"], e["valid"], e["invalidated_at"]) for e in entries] == [("training-1", True, None)]
    assert len(entries[0]["cache_key"]) == 64

    stacks = {s["name"]: s for s in invoke_json("stack", "list")}
    assert stacks["prod"] == {
        "name": "prod",
        "active": False,
        "orchestrator": "default",
        "artifact_store": "default",
        "metadata_store": "prod",
    }
    described = invoke_json("stack", "describe", "prod")
    assert described["name"] == "prod" and described["active"] is False
    assert described["metadata_store"]["flavor"] == "mysql" and "password" not in described["metadata_store"]["config"]


def test_component_and_flavor_shapes(recorded: None) -> None:
    stores = invoke_json("metadata-store", "list")
    assert stores == [
        {"name": "default", "flavor": "sqlite", "in_active_stack": True},
        {"name": "prod", "flavor": "mysql", "in_active_stack": False},
    ]
    prod = invoke_json("metadata-store", "describe", "prod")
    assert prod["config"]["password"] == "${env:PW_FOR_TEST}"  # the reference, never the secret
    assert prod["stacks"] == ["prod"] and prod["type"] == "metadata_store"

    flavors = {f["name"]: f for f in invoke_json("metadata-store", "flavor", "list")}
    assert {"sqlite", "mysql", "postgresql"} <= set(flavors) and flavors["sqlite"]["origin"] == "built-in"
    mysql = invoke_json("metadata-store", "flavor", "describe", "mysql")
    fields = {f["name"]: f for f in mysql["fields"]}
    assert fields["password"]["secret"] is True and fields["host"]["secret"] is False
    assert fields["database"]["required"] is True and fields["database"]["default"] is None
    assert fields["port"] == {**fields["port"], "default": 3306, "required": False, "type": "int"}


def test_a_step_not_run_after_a_failure_is_listed_skipped() -> None:
    with pytest.raises(RunFailedError):
        P.failing()
    run = invoke_json("run", "show", "failing-1")
    statuses = {s["name"]: s["status"] for s in run["steps"]}
    assert statuses == {
        "load": "completed",
        "explode": "failed",
        "after_failure": "skipped",
        "independent": "completed",
    }
    assert run["not_run"] == []
    skipped = next(s for s in run["steps"] if s["name"] == "after_failure")
    assert skipped["cache_explanation"] == "not run: upstream step explode failed" and skipped["outputs"] == {}
