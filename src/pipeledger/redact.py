"""Credentials out of URLs: what pipeledger records or exports never carries a secret.

A URL can hold a credential in two places: its userinfo (``https://user:TOKEN@host/``,
``https://TOKEN@host/``) and its query string (``?token=...``, a presigned S3 URL's
``X-Amz-Signature``, an Azure SAS ``sig``). :func:`redact_url` removes the whole
userinfo of URLs with a scheme (a user name alone may be a token, as in GitHub's
``https://<token>@github.com/``) and drops query parameters whose names are known to
carry credentials. scp-like git remotes (``git@host:org/repo.git``) are left alone:
their user is an SSH login, never a secret. :func:`redact_json` applies this to every
URL found in the strings of a JSON value (run environments, stack snapshots).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

#: Query parameters (compared case-insensitively) whose values are credentials.
SECRET_QUERY_PARAMETERS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "client_secret",
        "code",
        "credential",
        "credentials",
        "key",
        "passwd",
        "password",
        "private_token",
        "pwd",
        "secret",
        "session_token",
        "sig",
        "signature",
        "token",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-credential",
        "x-goog-signature",
    }
)

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def _secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_QUERY_PARAMETERS or lowered.endswith(("_token", "-token", "_secret", "_password"))


def url_credentials(url: str) -> str | None:
    """What credential ``url`` carries (``"a user name and password"``, ``"the query
    parameter 'token'"``), or None. Only URLs with a scheme are looked at."""
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password is not None:
        return "a user name and password"
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if _secret_parameter(name):
            return f"the query parameter {name!r}"
    return None


def redact_url(url: str) -> str:
    """``url`` without its userinfo and without query parameters that carry credentials.

    Text that is not a URL with a scheme (a path, an scp-like git remote) is returned
    unchanged; so is a URL that cannot be parsed, except that its userinfo is cut.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if not _secret_parameter(k)]
            if len(kept) != len(pairs):
                query = urlencode(kept)
        if netloc == parts.netloc and query == parts.query:
            return url  # nothing to cut: keep the text exactly (``sqlite:////abs/path``)
        rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
        return rebuilt + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    except ValueError:  # e.g. an invalid port: still cut anything before the last '@'
        scheme, _, rest = url.partition("://")
        authority, slash, path = rest.partition("/")
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (see :func:`redact_url`)."""
    if "://" not in text:
        return text
    return _URL.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    url = found.rstrip(".,;:!?)]}")  # punctuation after a URL in a sentence is not part of it
    return redact_url(url) + found[len(url) :]


def redact_json(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists, strings...) with every URL in its strings redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_json(v) for v in value]
    return value
