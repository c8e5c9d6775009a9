"""``pipeledger audit list|prune``: the server's audit log (server administrators; the library:
:mod:`pipeledger.metadata_store.audit`)."""

from __future__ import annotations

from datetime import datetime, timezone

import click
from rich.table import Table

from pipeledger.cli.errors import PipeledgerGroup
from pipeledger.cli.gc import parse_age
from pipeledger.cli.json_output import iso, print_json
from pipeledger.cli.options import json_option, limit_option, yes_option
from pipeledger.cli.output import console, esc, when
from pipeledger.client import Client
from pipeledger.metadata_store.audit import audit_events, prune_audit
from pipeledger.models import AUDIT_OUTCOMES, AuditEvent, AuditFilter, utcnow
from pipeledger.text import plural

#: The keys ``--filter`` accepts.
FILTER_KEYS = ("principal", "action", "outcome", "project", "since", "until")


@click.group("audit", cls=PipeledgerGroup)
def audit_group() -> None:
    """Read and prune the server's audit log: every write and every denied request.

    Needs a stack whose metadata store is the server (rest; as a server administrator) or
    its database.

    \b
    Example:
      pipeledger audit list --filter outcome=denied --filter since=24h
    """


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or an age before now (``24h``, ``7d``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return utcnow() - parse_age(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_filters(filters: tuple[str, ...], limit: int) -> AuditFilter:
    """``("principal=alice", "since=24h")`` as an :class:`AuditFilter`.

    Raises:
        click.UsageError: a filter that is not KEY=VALUE with a known key, or an unknown outcome.
    """
    values: dict[str, object] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in FILTER_KEYS or not value.strip():
            raise click.UsageError(f"--filter {item!r}: write KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}")
        value = value.strip()
        if key == "outcome" and value not in AUDIT_OUTCOMES:
            raise click.UsageError(f"--filter {item!r}: outcome is one of {', '.join(AUDIT_OUTCOMES)}")
        values[key] = parse_moment(value) if key in ("since", "until") else value
    return AuditFilter(limit=limit, **values)  # type: ignore[arg-type]


def event_json(event: AuditEvent) -> dict[str, object]:
    """An audit event as ``audit list --json`` prints it."""
    return {
        "id": event.id,
        "at": iso(event.at),
        "principal": event.principal,
        "action": event.action,
        "project": event.project,
        "target": event.target,
        "outcome": event.outcome,
        "status": event.status,
        "remote": event.remote,
        "detail": event.detail,
    }


@audit_group.command("list")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="principal=, action= (trailing * for a prefix), outcome=allowed|denied|failed, project=, "
    "since=/until= (ISO time, UTC by default, or an age such as 24h); repeat to combine.",
)
@limit_option(100, "events")
@json_option()
def list_events(filters: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List audit events, newest first.

    \b
    Example:
      pipeledger audit list --filter principal=alice --filter action='store.delete_*' --limit 20
    """
    where = parse_filters(filters, limit)
    events = audit_events(Client().store, where)
    if as_json:
        print_json([event_json(event) for event in events])
        return
    if not events:
        console().print("No audit event matches.")
        return
    table = Table("at (UTC)", "principal", "action", "project", "target", "outcome", "status", "from", "detail")
    for event in events:
        table.add_row(
            when(event.at),
            esc(event.principal or "-"),
            esc(event.action),
            esc(event.project or ""),
            esc(event.target or ""),
            esc(event.outcome),
            str(event.status),
            esc(event.remote or ""),
            esc(event.detail or ""),
        )
    console().print(table)


@audit_group.command("prune")
@click.option(
    "--older-than", required=True, help="Delete events older than this age (e.g. 90d; whole days on a server)."
)
@yes_option()
def prune(older_than: str, yes: bool) -> None:
    """Delete audit events older than an age now (the server also prunes on its own, keeping
    --audit-retention-days).

    \b
    Example:
      pipeledger audit prune --older-than 180d --yes
    """
    age = parse_age(older_than)
    if not yes:
        click.confirm(f"Delete every audit event older than {older_than}?", abort=True)
    deleted = prune_audit(Client().store, age)
    console().print(f"Deleted {plural(deleted, 'audit event')} older than {esc(older_than)}.")
