"""The CLI: every command has help with an example; commands print runs; errors are one line."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pipeledger import RunFailedError
from pipeledger.cli.main import cli
from tests import pipelines as P


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "pipeledger")
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    code, out, _ = invoke(*path, "--help")
    assert code == 0
    assert "Example:" in out, f"`pipeledger {' '.join(path)} --help` shows no example"
    assert "pipeledger " in out.split("Example:")[1]


def test_run_list_show_and_logs() -> None:
    P.training(lr=0.5)
    with pytest.raises(RunFailedError):
        P.failing()

    code, out, _ = invoke("run", "list")
    assert code == 0
    assert "training-1" in out and "failing-1" in out and "completed" in out and "failed" in out

    code, out, _ = invoke("run", "list", "--status", "failed")
    assert "failing-1" in out and "training-1" not in out

    code, out, _ = invoke("run", "list", "--pipeline", "training", "--limit", "1")
    assert "training-1" in out and "failing-1" not in out

    code, out, _ = invoke("run", "show", "training-1")
    assert code == 0
    for expected in (
        "training-1",
        "load",
        "train",
        "evaluate",
        '"lr": 0.5',
        "model",
        "accuracy",
        "/training/training-1-",  # the run's directory: name and id
        '"accuracy": 1.0',
    ):
        assert expected in out, expected

    code, out, _ = invoke("run", "show", "failing-1")
    assert "not run" in out and "after_failure" in out and "boom" in out

    code, out, _ = invoke("run", "show")  # the latest run
    assert code == 0 and "failing-1" in out

    code, out, _ = invoke("run", "logs", "training-1", "load")
    assert code == 0 and "loading 4 rows" in out

    code, out, _ = invoke("run", "logs", "training-1")
    assert "=== load (completed) ===" in out and "=== train (completed) ===" in out

    code, out, _ = invoke("pipeline", "list")
    assert code == 0 and "training" in out and "failing" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "show", "nope"), "no run named 'nope'"),
        (("run", "logs", "nope"), "no run named 'nope'"),
        (("run", "list", "--pipeline", "nope"), "no pipeline named 'nope'"),
    ],
)
def test_errors_are_one_line_without_traceback(args: tuple[str, ...], message: str) -> None:
    P.training()
    code, out, err = invoke(*args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_logs_of_a_silent_step_say_so() -> None:
    """Issue 14: `run logs` of a step that printed nothing printed nothing at all."""
    P.training()
    code, out, _ = invoke("run", "logs", "training-1", "train")
    assert code == 0 and out == "(step train printed nothing)\n"
    code, out, _ = invoke("run", "logs", "training-1")
    assert code == 0
    assert "=== train (completed) ===\n(step train printed nothing)\n=== evaluate (completed) ===" in out
    assert "loading 4 rows" in out and "(step load printed nothing)" not in out


def test_unknown_step_in_logs() -> None:
    P.training()
    code, _, err = invoke("run", "logs", "training-1", "nope")
    assert code == 1 and "no step named 'nope' in run 'training-1'; steps: load, train, evaluate" in err


def test_empty_store_messages() -> None:
    assert "No pipeline recorded yet" in invoke("pipeline", "list")[1]
    assert "No run matches" in invoke("run", "list")[1]
    code, _, err = invoke("run", "show")
    assert code == 1 and "no run recorded yet" in err


def test_debug_shows_traceback() -> None:
    result = CliRunner().invoke(cli, ["--debug", "run", "show", "nope"])
    assert result.exit_code == 1 and result.exception is not None
