"""``pipeledger api-key ...``: API keys of a pipeledger server: one's own, or anyone's for a server
administrator (the library: :class:`pipeledger.metadata_store.rest.identities.IdentityClient`)."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.table import Table

from pipeledger.cli import json_output
from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.options import json_option, server_stack_option
from pipeledger.cli.output import console, esc
from pipeledger.cli.user import duration_option, print_issued_key


@click.group("api-key", cls=PipeledgerGroup)
def api_key_group() -> None:
    """Make, list and revoke API keys on a pipeledger server.

    \b
    Example:
      pipeledger api-key create --label laptop --expires 30d
    """


@api_key_group.command("create")
@click.option("--label", default=None, help="What the key is for (shown in listings).")
@duration_option("--expires", help="The key expires after this long (e.g. 30d, 12h, 2w); default: never.")
@click.option("--user", default=None, help="Make the key for this user (server administrators).")
@server_stack_option()
def create(label: str | None, expires: timedelta | None, user: str | None, stack: str | None) -> None:
    """Make an API key and print it, once (only a hash of it is kept).

    \b
    Example:
      pipeledger api-key create --label ci --expires 90d
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        issued = client.create_key(user=user, label=label, expires=expires)
    finally:
        client.close()
    print_issued_key(issued, issued["info"]["principal"])


@api_key_group.command("list")
@click.option("--user", default=None, help="This user's keys (server administrators).")
@click.option("--all", "every_user", is_flag=True, help="Every user's keys (server administrators).")
@click.option("--revoked", is_flag=True, help="Include revoked keys.")
@json_option()
@server_stack_option()
def list_keys(user: str | None, every_user: bool, revoked: bool, as_json: bool, stack: str | None) -> None:
    """List API keys (ids, labels, expiry; never the keys themselves): your own by default.

    \b
    Example:
      pipeledger api-key list --revoked
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        found = [json_output.api_key(k) for k in client.list_keys(user, every_user=every_user, include_revoked=revoked)]
    finally:
        client.close()
    if as_json:
        json_output.print_json(found)
        return
    if not found:
        console().print("No API key.")
        return
    table = Table("id", "user", "label", "created (UTC)", "expires (UTC)", "last used (UTC)", "state")
    for k in found:
        table.add_row(
            k["id"],
            esc(k["user"]),
            esc(k["label"] or ""),
            _time(k["created_at"]),
            _time(k["expires_at"]),
            _time(k["last_used_at"]),
            "revoked" if k["revoked_at"] else "active",
        )
    console().print(table)


def _time(value: str | None) -> str:
    return "" if value is None else value[:19].replace("T", " ")


@api_key_group.command("revoke")
@click.argument("key_id")
@server_stack_option()
def revoke(key_id: str, stack: str | None) -> None:
    """Revoke an API key by its id (`api-key list` shows them); it stops working at once.

    \b
    Example:
      pipeledger api-key revoke 0192f1c2a3b4c5d6e7f8091a2b3c4d5e
    """
    from pipeledger.stack.credentials import open_identity_client

    client = open_identity_client(stack)
    try:
        client.revoke_key(key_id)
    finally:
        client.close()
    console().print(f"API key {esc(key_id)} revoked.")
