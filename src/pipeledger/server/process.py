"""Running ``pipeledger server``: in the foreground (uvicorn), or as a daemon on one machine.

A daemon is the same command run in a new session with its output in
``$PIPELEDGER_HOME/server/server.log``; ``$PIPELEDGER_HOME/server/server.json`` records its
process id and URL for ``server stop`` and ``server status``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeledger.exceptions import ConfigError, PipeledgerError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.stack.home import pipeledger_home
from pipeledger.text import plural

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8237
#: Seconds ``server start --daemon`` waits for ``/ready``.
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerOptions:
    """How ``pipeledger server start`` serves (the CLI's options)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    stack: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    insecure_no_auth: bool = False
    server_names: tuple[str, ...] = ()
    """Names clients reach the server by (checked against the ``Host`` header; loopback names
    are always accepted)."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose pages may call the API from a browser (none: CORS off)."""
    max_request_bytes: int | None = None
    """The largest request body but artifact uploads (None: the default, 64 MiB)."""
    audit_retention_days: int | None = None
    """Days the audit log keeps events (0: forever; None: the default, 90)."""

    @property
    def url(self) -> str:
        """The URL clients use (``https`` with a certificate)."""
        scheme = "https" if self.ssl_certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(options: ServerOptions) -> None:
    """Refuse options the server cannot run with, in one line each (the bind address is checked
    against the store's principals by :func:`check_bind`).

    Raises:
        ConfigError: half a TLS configuration, an unreadable certificate, fewer than one worker,
            a negative limit or retention, or the port is taken.
    """
    if options.max_request_bytes is not None and options.max_request_bytes < 1:
        raise ConfigError(f"--max-request-bytes must be positive, not {options.max_request_bytes}")
    if options.audit_retention_days is not None and options.audit_retention_days < 0:
        raise ConfigError(f"--audit-retention-days must be 0 (keep) or more, not {options.audit_retention_days}")
    if (options.ssl_certfile is None) != (options.ssl_keyfile is None):
        raise ConfigError("give both --ssl-certfile and --ssl-keyfile for TLS, or neither")
    for path in (options.ssl_certfile, options.ssl_keyfile):
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read {path}: give a readable certificate and key")
    if options.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {options.workers}")
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((options.host, options.port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {options.host}:{options.port} ({exc.strerror}); choose another --port "
                "or stop what uses it (`pipeledger server status`)"
            ) from None


def check_bind(options: ServerOptions, authenticated: bool) -> None:
    """Refuse to listen beyond loopback without authentication.

    Args:
        authenticated: whether the store has principals (``pipeledger server init`` ran), so that
            every request needs an API key.

    Raises:
        ConfigError: a non-loopback host, no principals, and no ``--insecure-no-auth``.
    """
    if not is_loopback(options.host) and not authenticated and not options.insecure_no_auth:
        raise ConfigError(
            f"refusing to listen on {options.host}: the server has no users yet, so anyone who reaches it "
            "could read and change every record; run `pipeledger server init` first (then every request "
            "needs an API key), listen on 127.0.0.1, or add --insecure-no-auth on a network you trust"
        )


def authentication_mode(store: MetadataStore) -> tuple[bool, str]:
    """Whether the server on ``store`` authenticates its callers, and a line saying so for its log."""
    from pipeledger.server.app import directory_for

    directory = directory_for(store)
    if directory is None:
        return False, (
            f"authentication: none (the {store.flavor} store keeps no users): every caller acts as administrator"
        )
    count = directory.count_principals()
    if count == 0:
        return False, (
            "authentication: none yet (`pipeledger server init` never ran): every caller acts as administrator"
        )
    return (
        True,
        f"authentication: API keys ({plural(count, 'principal')}: users and service accounts); "
        "requests without a key get 401",
    )


def serve(options: ServerOptions) -> None:
    """Serve in the foreground until interrupted, with access logs on stderr. The stack's
    metadata store is opened first, so a store that cannot be opened is one error line."""
    import uvicorn

    from pipeledger.server.app import STACK_VARIABLE
    from pipeledger.server.http_protocol import NoDelayProtocol
    from pipeledger.server.security.http import access_log_config

    check_options(options)
    mode = check_stack(options)
    print(f"pipeledger server: {mode}", file=sys.stderr, flush=True)
    if options.stack:
        os.environ[STACK_VARIABLE] = options.stack
    else:
        os.environ.pop(STACK_VARIABLE, None)
    os.environ.update(worker_environment(options))
    uvicorn.run(
        "pipeledger.server.app:app_from_environment",
        factory=True,
        http=NoDelayProtocol,
        host=options.host,
        port=options.port,
        workers=options.workers,
        ssl_certfile=options.ssl_certfile,
        ssl_keyfile=options.ssl_keyfile,
        access_log=True,
        log_config=access_log_config(),
        log_level="info",
        timeout_keep_alive=30,
        server_header=False,
    )


def check_stack(options: ServerOptions) -> str:
    """Open the stack's metadata store once (a store that cannot be opened is one error line)
    and check the bind address against its principals (:func:`check_bind`); the line saying how
    the server authenticates (:func:`authentication_mode`)."""
    from pipeledger.server.app import open_stack

    checked = open_stack(options.stack)
    try:
        authenticated, mode = authentication_mode(checked.metadata_store)
    finally:
        checked.metadata_store.close()
    check_bind(options, authenticated)
    return mode


def worker_environment(options: ServerOptions) -> dict[str, str]:
    """The environment variables that carry the HTTP and audit settings to uvicorn's workers."""
    from pipeledger.server.security.audit import RETENTION_VARIABLE
    from pipeledger.server.security.http import DEFAULT_MAX_REQUEST, HttpSettings

    settings = HttpSettings(
        frozenset(name.lower() for name in options.server_names),
        options.cors_origins,
        options.max_request_bytes or DEFAULT_MAX_REQUEST,
    )
    found = settings.environment()
    if options.audit_retention_days is not None:
        found[RETENTION_VARIABLE] = str(options.audit_retention_days)
    return found


# ------------------------------------------------------------------------------- daemon


@dataclass(frozen=True)
class DaemonState:
    """What ``server.json`` records of a daemon."""

    pid: int
    url: str
    stack: str | None
    log: str


def state_dir(home: Path | None = None) -> Path:
    """``$PIPELEDGER_HOME/server``: the daemon's state and log."""
    return (home or pipeledger_home()) / "server"


def read_state(home: Path | None = None) -> DaemonState | None:
    """The recorded daemon, or None."""
    path = state_dir(home) / "server.json"
    try:
        return DaemonState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def probe(url: str, path: str = "/ready", timeout: float = 2.0) -> dict[str, Any] | None:
    """The JSON answer of ``GET url+path`` when it is 200, else None."""
    import ssl

    context = ssl._create_unverified_context() if url.startswith("https") else None  # our own daemon
    try:
        with urllib.request.urlopen(url + path, timeout=timeout, context=context) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except (OSError, ValueError, urllib.error.URLError):
        return None


def start_daemon(options: ServerOptions, home: Path | None = None) -> DaemonState:
    """Start the server in the background and wait until it is ready.

    Raises:
        ConfigError: a daemon already runs, or the options are refused (see :func:`check_options`).
        PipeledgerError: the server exited or did not become ready (the message quotes its log).
    """
    running = read_state(home)
    if running is not None and alive(running.pid):
        raise ConfigError(f"a server already runs (pid {running.pid}, {running.url}); `pipeledger server stop` first")
    check_options(options)
    check_stack(options)
    directory = state_dir(home)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = directory / "server.log"
    command = [sys.executable, "-c", "from pipeledger.cli.main import main; main()", "server", "start"]
    command += ["--host", options.host, "--port", str(options.port), "--workers", str(options.workers)]
    for flag, value in (("--stack", options.stack), ("--ssl-certfile", options.ssl_certfile)):
        if value:
            command += [flag, value]
    if options.ssl_keyfile:
        command += ["--ssl-keyfile", options.ssl_keyfile]
    if options.insecure_no_auth:
        command.append("--insecure-no-auth")
    for name in options.server_names:
        command += ["--server-name", name]
    for origin in options.cors_origins:
        command += ["--cors-origin", origin]
    if options.max_request_bytes is not None:
        command += ["--max-request-bytes", str(options.max_request_bytes)]
    if options.audit_retention_days is not None:
        command += ["--audit-retention-days", str(options.audit_retention_days)]
    with open(log_path, "ab") as log:
        os.chmod(log_path, 0o600)
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    state = DaemonState(process.pid, options.url, options.stack, str(log_path))
    (directory / "server.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipeledgerError(f"the server exited ({_last_line(log_path)}); its log: {log_path}")
        if probe(options.url) is not None:
            return state
        time.sleep(0.1)
    process.terminate()
    raise PipeledgerError(f"the server was not ready within {READY_TIMEOUT:.0f} s; its log: {log_path}")


def stop_daemon(home: Path | None = None, timeout: float = 15.0) -> DaemonState | None:
    """Stop the recorded daemon (SIGTERM, then SIGKILL after ``timeout`` seconds); None when
    none runs."""
    state = read_state(home)
    path = state_dir(home) / "server.json"
    if state is None or not alive(state.pid):
        path.unlink(missing_ok=True)
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return state


def _last_line(log_path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
    return "no output"
