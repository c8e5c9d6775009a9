"""``pipeledger login URL`` and ``pipeledger logout``: a pipeledger server's token, kept in a private
file that a stack refers to (the library: :mod:`pipeledger.stack.credentials`)."""

from __future__ import annotations

import sys

import click

from pipeledger.cli.options import server_stack_option
from pipeledger.cli.output import console, esc


def _secret(what: str, from_stdin: bool) -> str:
    """A secret typed at a hidden prompt, or the first line of standard input."""
    if from_stdin:
        return sys.stdin.readline().strip()
    return str(click.prompt(what, hide_input=True)).strip()


@click.command("login")
@click.argument("url")
@click.option("--user", "-u", default=None, help="Log in with this user's password instead of an API key.")
@server_stack_option()
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the API key (with --user: the password) from standard input instead of a hidden prompt.",
)
@click.option("--ca-cert", default=None, help="CA certificate that signed the server's (HTTPS).")
@click.option("--no-verify-tls", is_flag=True, help="Do not check the server's TLS certificate (testing only).")
@click.option("--activate/--no-activate", default=True, show_default=True, help="Make the stack the active one.")
def login(
    url: str,
    user: str | None,
    stack: str | None,
    from_stdin: bool,
    ca_cert: str | None,
    no_verify_tls: bool,
    activate: bool,
) -> None:
    """Log in to the pipeledger server at URL and point a stack at it.

    Asks for an API key (hidden), or with --user for that user's password (the server then
    issues a login token lasting 30 days). The token is saved in
    $PIPELEDGER_HOME/credentials/<stack>.token (mode 0600); the stack's rest metadata store
    (and rest artifact store) refer to that file (token: ${file:...}), never to the token itself.
    The stack (default: named after the server's host) is created, or its token updated.

    \b
    Example:
      pipeledger login https://ledger.internal:8237 --stack team
      pipeledger login https://ledger.internal:8237 --user alice
    """
    from pipeledger.stack.credentials import login as log_in
    from pipeledger.stack.manager import StackManager

    secret = _secret("Password" if user else "API key", from_stdin)
    result = log_in(
        url,
        api_key=None if user else secret,
        user=user,
        password=secret if user else None,
        stack=stack,
        ca_cert=ca_cert,
        verify_tls=not no_verify_tls,
    )
    name = result.connected.stack
    if activate:
        StackManager().set_active_stack(name)
    who = result.principal
    role = "server administrator" if who.get("server_admin") else f"{len(who.get('roles', {}))} project(s)"
    done = "created" if result.connected.created else "updated"
    active = " and made active" if activate else ""
    console().print(f"Logged in to {esc(url)} as {esc(who.get('name'))} ({role}).")
    console().print(f"Stack {esc(name)!r} {done}{active}; token saved in {esc(result.token_file)} (mode 0600).")


@click.command("logout")
@server_stack_option()
def logout(stack: str | None) -> None:
    """Forget the token `pipeledger login` saved for a stack (default: the active stack).

    A login token (from --user) is revoked on the server too; an API key stays valid (revoke it
    with `pipeledger api-key revoke`). The token's file is deleted even if the server is down.

    \b
    Example:
      pipeledger logout --stack team
    """
    from pipeledger.stack.credentials import logout as log_out

    name, revoked = log_out(stack)
    told = f" (login token {revoked} revoked on the server)" if revoked else ""
    console().print(f"Logged out of stack {esc(name)!r}{told}.")
