"""Secret references: how passwords and tokens are configured without being stored.

A secret field's value is a reference, resolved only when the component is built:

* ``${env:NAME}``: the environment variable ``NAME``;
* ``${file:/path/to/secret}``: the contents of a file (trailing newline removed). The path
  must be absolute (``~/...`` is expanded): a relative one would depend on the directory
  pipeledger happens to run in, so it is refused when registered and when resolved.

A literal secret is refused: configuration files, ``describe`` and run records
only ever contain the reference.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeledger.exceptions import ConfigError

REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


def is_reference(value: object) -> bool:
    """Whether ``value`` is a secret reference."""
    return isinstance(value, str) and REFERENCE.match(value) is not None


def check_reference(field: str, value: object, where: str) -> None:
    """Refuse a literal secret with a message explaining the reference syntax, and a
    ``${file:...}`` reference whose path is relative."""
    if value is None:
        return
    if is_reference(value):
        _check_file_path(field, str(value), where)
        return
    raise ConfigError(
        f"{where}: refusing to store a clear-text secret in field {field!r}; give a reference "
        f"instead, e.g. --{field.replace('_', '-')}='${{env:{_example_variable(field)}}}' (an environment "
        f"variable) or '${{file:/path/to/secret}}' (a file), resolved when connecting"
    )


_EXAMPLE_VARIABLES = {
    "password": "DB_PASSWORD",
    "token": "PIPELEDGER_TOKEN",
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
}


def _example_variable(field: str) -> str:
    """An environment variable name to show in the example of :func:`check_reference`."""
    return _EXAMPLE_VARIABLES.get(field, f"PIPELEDGER_{field.upper()}")


def resolve(field: str, value: str, where: str) -> str:
    """The secret a reference points to.

    Raises:
        ConfigError: the variable is unset or the file unreadable (the message names
            the reference, never a secret).
    """
    match = REFERENCE.match(value)
    if match is None:
        raise ConfigError(f"{where}: field {field!r} must be a secret reference like ${{env:NAME}}")
    _check_file_path(field, value, where)
    kind, target = match.groups()
    if kind == "env":
        secret = os.environ.get(target)
        if secret is None:
            raise ConfigError(
                f"{where}: {field} refers to environment variable {target}, which is not set; "
                f"export {target}=... and try again"
            )
        return secret
    try:
        return Path(target).expanduser().read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        hint = ""
        if Path(target).expanduser().parent.name == "credentials" and target.endswith(".token"):
            hint = "; log in again with `pipeledger login URL` (`pipeledger logout` deleted it)"
        raise ConfigError(f"{where}: cannot read {field} from file {target}: {exc.strerror}{hint}") from exc


def _check_file_path(field: str, reference: str, where: str) -> None:
    match = REFERENCE.match(reference)
    if match is None or match.group(1) != "file":
        return
    target = match.group(2)
    if not Path(target).expanduser().is_absolute():
        raise ConfigError(
            f"{where}: {field} refers to file {target!r}, a relative path; give an absolute one, "
            f"e.g. '${{file:{Path(target).absolute()}}}' (relative paths would depend on the current directory)"
        )
