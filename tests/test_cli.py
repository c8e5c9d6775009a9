"""The CLI: every command has help with an example; commands print runs; errors are one line."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import pipeledger
from pipeledger import ConfigError, RunFailedError
from pipeledger.cli.errors import PipeledgerGroup
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
    assert "skipped" in out and "after_failure" in out and "boom" in out

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


def test_version_is_defined_once() -> None:
    """pyproject.toml reads the version from ``pipeledger.__version__``; `--version` and the
    installed metadata agree with it."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pipeledger.__version__"}
    code, out, _ = invoke("--version")
    assert code == 0 and out == f"pipeledger, version {pipeledger.__version__}\n"
    assert importlib.metadata.version("pipeledger") == pipeledger.__version__


def _group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=PipeledgerGroup)
    @click.option("--debug", is_flag=True)
    def root(debug: bool) -> None:
        """A root group like `pipeledger`'s."""

    @root.group("noun")
    def noun() -> None:
        """A nested group: its commands' errors are handled by the root."""

    @noun.command("verb")
    def verb() -> None:
        raise exc

    return root


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ConfigError("no stack named 'x'"), "Error: no stack named 'x'"),
        (OSError(28, "No space left on device"), "Error: [Errno 28] No space left on device"),
        (ValueError("bad value\nsecond line"), "Error: bad value"),
    ],
)
def test_expected_errors_are_one_line_and_exit_1(exc: Exception, line: str) -> None:
    result = CliRunner().invoke(_group_raising(exc), ["noun", "verb"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [line] and result.stdout == ""


def test_an_unexpected_error_names_the_bug_and_where_to_report_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELEDGER_DEBUG", raising=False)
    result = CliRunner().invoke(_group_raising(KeyError("x")), ["noun", "verb"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: unexpected KeyError: 'x'. This is a bug in pipeledger: please report it to ")
    assert "PIPELEDGER_DEBUG=1" in line


@pytest.mark.parametrize("how", ["--debug", "PIPELEDGER_DEBUG=1"])
def test_debug_lets_the_traceback_through(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "--debug":
        args = ["--debug", "noun", "verb"]
    else:
        monkeypatch.setenv("PIPELEDGER_DEBUG", "1")
        args = ["noun", "verb"]
    for exc in (KeyError("x"), ConfigError("bad")):
        result = CliRunner().invoke(_group_raising(exc), args)
        assert result.exit_code == 1 and result.exception is exc  # Python prints it with its traceback


def test_ctrl_c_exits_130_with_one_line() -> None:
    result = CliRunner().invoke(_group_raising(KeyboardInterrupt()), ["noun", "verb"])
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == ["Interrupted."]


def test_usage_errors_are_clicks() -> None:
    code, _, err = invoke("run", "show", "--no-such-option")
    assert code == 2 and "--no-such-option" in err and "Try 'cli run show --help' for help." in err
    code, _, err = invoke("stack", "set")
    assert code == 2 and "Missing argument 'NAME'" in err


def test_the_real_command_tree_uses_the_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """No command catches for printing: an unexpected error in any command reaches the root."""
    assert isinstance(cli, PipeledgerGroup)

    def broken(self: object) -> None:
        raise RuntimeError("broken listing")

    monkeypatch.setattr("pipeledger.stack.manager.StackManager.list_stacks", broken)
    code, _, err = invoke("stack", "list")
    assert code == 1 and err.startswith("Error: unexpected RuntimeError: broken listing. This is a bug")
