"""The identity routes of a pipeledger server, as a library: logging in, users, API keys,
projects and members. The ``pipeledger login``, ``user``, ``api-key`` and ``project`` commands
are thin over :class:`IdentityClient`.

Answers are the server's JSON records as dicts (``name``, ``kind``, ``roles``... for a
principal; ``id``, ``principal``, ``label``, ``expires_at``, ``revoked_at``... for a key); a key's
text appears only in the answer of the call that makes it (``key``).

Example::

    from pipeledger.metadata_store.rest.identities import IdentityClient
    from pipeledger.metadata_store.rest.transport import Transport

    client = IdentityClient(Transport("https://ledger.internal:8237", token=admin_key))
    made = client.create_user("carol")
    print(made["key"]["key"])          # carol's first API key, shown once
    client.set_member("vision", "carol", "write")
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from pipeledger.metadata_store.rest.transport import Transport

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """A duration written ``30d``, ``12h``, ``90m``, ``2w`` or ``45s``.

    Raises:
        ValueError: another form, or zero.
    """
    found = _DURATION.match(text)
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: write a positive number and a unit, e.g. 30d, 12h, 90m, 2w")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def _seconds(duration: timedelta | None) -> int | None:
    return None if duration is None else int(duration.total_seconds())


def _part(name: str) -> str:
    return quote(name, safe="")


class IdentityClient:
    """Calls the identity routes of the server ``transport`` talks to (with its token)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @property
    def url(self) -> str:
        """The server's URL."""
        return self.transport.url

    def close(self) -> None:
        """Close the connections."""
        self.transport.close()

    def __enter__(self) -> IdentityClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ session

    def login(self, user: str, password: str, lifetime: timedelta | None = None) -> dict[str, Any]:
        """A login token for ``user``: ``{"key": "pl_...", "info": {...}}`` (no token needed)."""
        body = {"user": user, "password": password, "lifetime_seconds": _seconds(lifetime)}
        found: dict[str, Any] = self.transport.request("POST", "/auth/login", body)
        return found

    def logout(self) -> str | None:
        """Revoke the token this client sends if it is a login token; the revoked key's id, or None."""
        found: str | None = self.transport.request("POST", "/auth/logout")["revoked"]
        return found

    def whoami(self) -> dict[str, Any]:
        """Who the token authenticates: ``name``, ``kind``, ``server_admin``, ``roles``, ``key_id``,
        ``authentication`` (false: the server has no users, everyone is ``anonymous``)."""
        found: dict[str, Any] = self.transport.request("GET", "/auth/whoami")
        return found

    # ------------------------------------------------------------------ users

    def list_users(self) -> list[dict[str, Any]]:
        """Every user and service account (server administrators)."""
        found: list[dict[str, Any]] = self.transport.request("GET", "/users")
        return found

    def create_user(
        self,
        name: str,
        *,
        service: bool = False,
        server_admin: bool = False,
        password: str | None = None,
        issue_key: bool = True,
        key_expires: timedelta | None = None,
    ) -> dict[str, Any]:
        """Create a user (a service account with ``service``): ``{"principal": {...}, "key": {...}}``."""
        body = {
            "name": name,
            "service": service,
            "server_admin": server_admin,
            "password": password,
            "issue_key": issue_key,
            "key_expires_seconds": _seconds(key_expires),
        }
        found: dict[str, Any] = self.transport.request("POST", "/users", body)
        return found

    def get_user(self, name: str) -> dict[str, Any]:
        """The user or service account ``name`` (oneself, or any for a server administrator)."""
        found: dict[str, Any] = self.transport.request("GET", f"/users/{_part(name)}")
        return found

    def set_disabled(self, name: str, disabled: bool = True) -> dict[str, Any]:
        """Disable (or enable) ``name``."""
        action = "disable" if disabled else "enable"
        found: dict[str, Any] = self.transport.request("POST", f"/users/{_part(name)}/{action}")
        return found

    def set_password(self, name: str, password: str | None) -> dict[str, Any]:
        """Set (None: remove) the password of ``name``."""
        found: dict[str, Any] = self.transport.request("PUT", f"/users/{_part(name)}/password", {"password": password})
        return found

    # ------------------------------------------------------------------ keys

    def list_keys(
        self, user: str | None = None, *, every_user: bool = False, include_revoked: bool = False
    ) -> list[dict[str, Any]]:
        """API keys: one's own, ``user``'s or ``every_user``'s (server administrators)."""
        params: dict[str, Any] = {"include_revoked": include_revoked, "every_user": every_user}
        if user is not None:
            params["user"] = user
        found: list[dict[str, Any]] = self.transport.request("GET", "/keys", params=params)
        return found

    def create_key(
        self, *, user: str | None = None, label: str | None = None, expires: timedelta | None = None
    ) -> dict[str, Any]:
        """A new API key (for oneself, or ``user``): ``{"key": "pl_...", "info": {...}}``."""
        body = {"user": user, "label": label, "expires_seconds": _seconds(expires)}
        found: dict[str, Any] = self.transport.request("POST", "/keys", body)
        return found

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke the key ``key_id``."""
        found: dict[str, Any] = self.transport.request("DELETE", f"/keys/{_part(key_id)}")
        return found

    # ------------------------------------------------------------------ projects

    def list_projects(self) -> list[dict[str, Any]]:
        """The projects one belongs to (every project for a server administrator)."""
        found: list[dict[str, Any]] = self.transport.request("GET", "/projects")
        return found

    def create_project(self, name: str, description: str | None = None) -> dict[str, Any]:
        """Create a project (server administrators)."""
        found: dict[str, Any] = self.transport.request("POST", "/projects", {"name": name, "description": description})
        return found

    def list_members(self, project: str) -> list[dict[str, Any]]:
        """The members of ``project`` (its admins)."""
        found: list[dict[str, Any]] = self.transport.request("GET", f"/projects/{_part(project)}/members")
        return found

    def set_member(self, project: str, user: str, role: str) -> dict[str, Any]:
        """Give ``user`` the ``role`` (``read``, ``write``, ``admin``) in ``project``."""
        path = f"/projects/{_part(project)}/members/{_part(user)}"
        found: dict[str, Any] = self.transport.request("PUT", path, {"role": role})
        return found

    def remove_member(self, project: str, user: str) -> None:
        """Take ``user``'s role in ``project`` away."""
        self.transport.request("DELETE", f"/projects/{_part(project)}/members/{_part(user)}")
