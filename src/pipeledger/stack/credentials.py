"""Where ``pipeledger login`` keeps a server's token, and the stack that refers to it.

The token (an API key, or a login token) goes to ``$PIPELEDGER_HOME/credentials/<stack>.token``,
mode ``0600`` in a ``0700`` directory, written atomically. The stack's ``rest`` metadata store (and
its ``rest`` artifact store, if it has one) get the reference ``${file:<that path>}``
(:mod:`.secrets`): the configuration file never holds the token itself.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeledger.exceptions import ConfigError, PipeledgerError
from pipeledger.permissions import PRIVATE, make_dirs, set_mode
from pipeledger.stack.config import DEFAULT
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.manager import StackManager

if TYPE_CHECKING:  # the rest client (httpx) is imported only when a server is called
    from pipeledger.metadata_store.rest.identities import IdentityClient

CREDENTIALS_DIR = "credentials"


def default_stack_name(url: str) -> str:
    """The stack ``pipeledger login URL`` makes when none is named: the server's host name
    (``ledger.internal``), characters a stack name cannot hold replaced by ``-``."""
    host = urlsplit(url).hostname or "server"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", host).strip("-._")[:64]
    return name or "server"


def token_path(stack: str, home: Path) -> Path:
    """The file holding the token of ``stack``."""
    return home / CREDENTIALS_DIR / f"{stack}.token"


def save_token(stack: str, token: str, home: Path) -> Path:
    """Write ``token`` to :func:`token_path` (mode 0600, replacing the old one atomically)."""
    path = token_path(stack, home)
    make_dirs(path.parent, PRIVATE)
    set_mode(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return path


def read_token(stack: str, home: Path) -> str | None:
    """The token saved for ``stack``, or None."""
    try:
        return token_path(stack, home).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def remove_token(stack: str, home: Path) -> bool:
    """Delete the token of ``stack``; whether there was one."""
    try:
        token_path(stack, home).unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class ConnectedStack:
    """What :func:`connect_stack` did."""

    stack: str
    created: bool
    """Whether the stack was registered now (else its components were updated)."""
    metadata_store: str
    artifact_store: str


def connect_stack(
    manager: StackManager,
    stack: str,
    url: str,
    token_file: Path,
    *,
    ca_cert: str | None = None,
    verify_tls: bool = True,
) -> ConnectedStack:
    """Point ``stack`` at the server ``url`` with the token in ``token_file``.

    A new stack gets a ``rest`` metadata store and a ``rest`` artifact store named like it, and the
    default orchestrator. An existing stack must have a ``rest`` metadata store: its URL and token
    reference are updated (and its artifact store's, if that is ``rest`` too).

    Raises:
        ConfigError: the stack exists with a metadata store that is not ``rest``, a component of
            the stack's name exists with another flavor, or the stack is ``default``.
    """
    if stack == DEFAULT:
        raise ConfigError("the default stack keeps its metadata locally; log in with another --stack")
    values: dict[str, object] = {"url": url, "token": f"${{file:{token_file}}}", "verify_tls": verify_tls}
    if ca_cert is not None:
        values["ca_cert"] = ca_cert
    existing = dict(manager.list_stacks()[0]).get(stack)
    if existing is None:
        for type_ in (ComponentType.METADATA_STORE, ComponentType.ARTIFACT_STORE):
            _register_or_update(manager, type_, stack, values)
        manager.register_stack(stack, DEFAULT, stack, stack)
        return ConnectedStack(stack, True, stack, stack)
    metadata_store = existing.metadata_store
    if manager.get_component(ComponentType.METADATA_STORE, metadata_store).flavor != "rest":
        raise ConfigError(
            f"stack {stack!r} keeps its metadata in {metadata_store!r}, which is not a pipeledger server; "
            "log in with another --stack"
        )
    manager.update_component(ComponentType.METADATA_STORE, metadata_store, values)
    artifact_store = existing.artifact_store
    if manager.get_component(ComponentType.ARTIFACT_STORE, artifact_store).flavor == "rest":
        manager.update_component(ComponentType.ARTIFACT_STORE, artifact_store, values)
    return ConnectedStack(stack, False, metadata_store, artifact_store)


def _register_or_update(manager: StackManager, type_: ComponentType, name: str, values: dict[str, object]) -> None:
    found = dict(manager.list_components(type_)).get(name)
    if found is None:
        manager.register_component(type_, name, "rest", dict(values))
        return
    if found.flavor != "rest":
        raise ConfigError(
            f"{type_.human} {name!r} is registered with flavor {found.flavor!r}; log in with another --stack"
        )
    manager.update_component(type_, name, dict(values))


# ---------------------------------------------------------------------------- logging in


@dataclass(frozen=True)
class LoginResult:
    """What :func:`login` did."""

    connected: ConnectedStack
    principal: dict[str, Any]
    """Who the token authenticates (the server's ``whoami`` answer)."""
    token_file: Path


def login(
    url: str,
    *,
    api_key: str | None = None,
    user: str | None = None,
    password: str | None = None,
    stack: str | None = None,
    ca_cert: str | None = None,
    verify_tls: bool = True,
    home: Path | None = None,
) -> LoginResult:
    """Log in to the server at ``url`` with an API key, or with ``user`` and ``password`` (which
    get a login token), save the token (:func:`save_token`) and point ``stack`` (default: named
    after the server's host) at the server (:func:`connect_stack`).

    Raises:
        AuthenticationError: the server refused the key or the password.
        ConfigError: the server has no users (nothing to log in to), the stack cannot be used,
            or neither a key nor a user was given.
        StoreUnavailableError: the server cannot be reached.
    """
    manager = StackManager(home)
    url = url.rstrip("/")
    verify: bool | str = ca_cert or verify_tls
    if user is not None:
        with _client(url, None, verify) as anonymous:
            api_key = str(anonymous.login(user, password or "")["key"])
    if not api_key:
        raise ConfigError("give an API key, or --user NAME and its password")
    with _client(url, api_key, verify) as client:
        principal = client.whoami()
    if not principal.get("authentication"):
        raise ConfigError(
            f"the server at {url} has no users (`pipeledger server init` never ran there), so there is "
            "nothing to log in to; register its stack without a token"
        )
    name = stack or default_stack_name(url)
    path = token_path(name, manager.home)
    connected = connect_stack(manager, name, url, path, ca_cert=ca_cert, verify_tls=verify_tls)
    save_token(name, api_key, manager.home)
    return LoginResult(connected, principal, path)


def logout(stack: str | None = None, home: Path | None = None) -> tuple[str, str | None]:
    """Forget the token saved for ``stack`` (default: the active stack): the server revokes it
    if it is a login token (an API key stays valid: revoke it with ``api-key revoke``), and its
    file is deleted even when the server cannot be reached. The stack's name and the revoked
    key's id (None if none was revoked).

    Raises:
        ConfigError: no token is saved for the stack.
    """
    manager = StackManager(home)
    name = stack or manager.active_stack_name()
    token = read_token(name, manager.home)
    if token is None:
        raise ConfigError(f"no login is saved for stack {name!r}; `pipeledger login URL --stack {name}` saves one")
    revoked: str | None = None
    entry = manager.get_stack_entry(name)
    component = manager.get_component(ComponentType.METADATA_STORE, entry.metadata_store)
    url = str(component.config.get("url", ""))
    verify: bool | str = component.config.get("ca_cert") or bool(component.config.get("verify_tls", True))
    with contextlib.suppress(PipeledgerError), _client(url, token, verify) as client:
        revoked = client.logout()
    remove_token(name, manager.home)
    return name, revoked


def open_identity_client(stack: str | None = None, home: Path | None = None) -> IdentityClient:
    """A client of the identity routes of the server ``stack`` (default: the active stack) keeps
    its metadata in, with the stack's token.

    Raises:
        ConfigError: the stack's metadata store is not a pipeledger server (``rest``).
        AuthenticationError: the server refused the token. StoreUnavailableError: unreachable.
    """
    from pipeledger.metadata_store.rest import RestMetadataStore
    from pipeledger.metadata_store.rest.identities import IdentityClient

    manager = StackManager(home)
    name = stack or manager.active_stack_name()
    entry = manager.get_stack_entry(name)
    component = manager.get_component(ComponentType.METADATA_STORE, entry.metadata_store)
    if component.flavor != "rest":
        raise ConfigError(
            f"stack {name!r} keeps its metadata in a {component.flavor} store, not a pipeledger server; "
            "log in to one with `pipeledger login URL`, or give --stack"
        )
    store = manager.build_component(ComponentType.METADATA_STORE, entry.metadata_store)
    assert isinstance(store, RestMetadataStore)
    return IdentityClient(store.transport)


@contextlib.contextmanager
def _client(url: str, token: str | None, verify: bool | str) -> Iterator[IdentityClient]:
    from pipeledger.metadata_store.rest.identities import IdentityClient
    from pipeledger.metadata_store.rest.transport import Transport

    client = IdentityClient(Transport(url, token=token, verify=verify, retry_window=0))
    try:
        yield client
    finally:
        client.close()
