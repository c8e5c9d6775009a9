"""Options several commands share, defined once so they read and behave the same everywhere.

Each function returns a click decorator; the parameter names are ``yes``, ``as_json``,
``limit`` and ``pipeline``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def yes_option(help: str = "Do not ask for confirmation.") -> Callable[[F], F]:
    """``--yes``/``-y``: skip the confirmation a destructive command asks for."""
    return click.option("--yes", "-y", is_flag=True, help=help)


def json_option() -> Callable[[F], F]:
    """``--json``: print the result as JSON on stdout (the shapes are in docs/cli-json.md)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table (fields: docs/cli-json.md)."
    )


def limit_option(default: int, what: str, newest_first: bool = True) -> Callable[[F], F]:
    """``--limit``/``-n``: at most this many items (``what``, e.g. "runs")."""
    order = " (newest first)" if newest_first else ""
    return click.option(
        "--limit",
        "-n",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help=f"Show at most this many {what}{order}.",
    )


def pipeline_option(help: str = "Only runs of this pipeline.") -> Callable[[F], F]:
    """``--pipeline``/``-p``: restrict to one pipeline's runs or entries."""
    return click.option("--pipeline", "-p", help=help)


def server_stack_option() -> Callable[[F], F]:
    """``--stack``/``-s``: the stack whose server (``rest`` metadata store) a command talks to."""
    return click.option(
        "--stack", "-s", default=None, help="Stack whose pipeledger server to talk to (default: the active stack)."
    )
