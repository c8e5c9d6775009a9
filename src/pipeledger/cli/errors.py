"""Error handling for every ``pipeledger`` command, in one place: the root group's ``invoke``.

- A :class:`~pipeledger.exceptions.PipeledgerError` (or an ``OSError``/``ValueError``, which
  name a file or a value the user gave): one line ``Error: ...`` on stderr, exit status 1.
- Usage errors (a missing argument, an unknown option), ``--help``, confirmations answered
  "no": handled by click as click does (exit 2 for usage errors, "Aborted!" and 1 for a
  refused confirmation).
- Ctrl-C (``KeyboardInterrupt``): one line ``Interrupted.`` on stderr, exit status 130
  (128 + SIGINT, as shells report it).
- Anything else is a bug in pipeledger: one line naming the exception and where to report it.
- ``--debug`` or the environment variable ``PIPELEDGER_DEBUG=1``: errors are not caught, so
  Python prints the full traceback (with its chained causes); exit status 1.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import click

from pipeledger.cli.output import error_console, esc
from pipeledger.exceptions import PipeledgerError, QueryError

DEBUG_VARIABLE = "PIPELEDGER_DEBUG"
INTERRUPTED_EXIT = 130
# Where users report bugs; the unexpected-error line names it.
REPORT_BUGS_TO = "the pipeledger issue tracker"
EXPECTED = (PipeledgerError, OSError, ValueError)


def debug_enabled(ctx: click.Context) -> bool:
    """Whether errors show their traceback: ``--debug`` on the root command or ``PIPELEDGER_DEBUG=1``."""
    return bool(ctx.find_root().params.get("debug")) or os.environ.get(DEBUG_VARIABLE, "") == "1"


def error_line(exc: Exception) -> str:
    """The one line printed for ``exc`` (after ``Error: ``): its message's first line, and for an
    exception pipeledger does not expect, that it is a bug and where to report it."""
    text = str(exc)
    if isinstance(exc, QueryError):  # the problem, then the filter with a caret under it
        return text
    message = text.splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, EXPECTED):
        return message
    return (
        f"unexpected {type(exc).__name__}: {message}. This is a bug in pipeledger: please report it to "
        f"{REPORT_BUGS_TO} with the traceback ({DEBUG_VARIABLE}=1 or --debug shows it)"
    )


def _fail(text: str, code: int) -> NoReturn:
    error_console().print(text, highlight=False, soft_wrap=True)
    raise click.exceptions.Exit(code)


class PipeledgerGroup(click.Group):
    """A click group whose root handles the errors of every command below it (see the module
    docstring), so commands raise and never catch for printing. Nested groups may use this
    class too: only the root context handles errors, once."""

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the command line; errors are turned into one line and an exit status."""
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            _fail("Interrupted.", INTERRUPTED_EXIT)
        except Exception as exc:
            if debug_enabled(ctx):
                raise
            _fail(f"[bold red]Error:[/bold red] {esc(error_line(exc))}", 1)
