"""API keys: their text, and the memory of keys already verified.

A key reads ``pl_<key id>_<secret>``: the key id is the row id in ``api_keys`` (public: listings
show it, the audit log records it), the secret 256 random bits (43 URL-safe characters). The
store keeps only an argon2id hash of the secret (:mod:`.hashing`); the key's text is shown once,
when it is made.

Verifying argon2 on every request would cost ~50 ms each: :class:`VerifiedKeys` remembers, per
key id, the SHA-256 of a key text whose secret verified against the stored hash, and a request
carrying the same text (compared with :func:`hmac.compare_digest`) skips argon2. What the memory
never answers is whether the key still works: its expiry and revocation, and its principal's
state and roles, are read from the database on every request (:mod:`.directory`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from pipeledger.models import new_id

#: What every key starts with (so a leaked key is recognisable by secret scanners).
KEY_PREFIX = "pl_"
_KEY = re.compile(r"^pl_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class KeyText:
    """A key's text split into its public id and its secret."""

    key_id: str
    secret: str

    @property
    def text(self) -> str:
        """The whole key, as the client sends it."""
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"


def new_key() -> KeyText:
    """A new key: a fresh id and 256 random bits of secret."""
    return KeyText(new_id(), secrets.token_urlsafe(32))


def parse_key(text: str) -> KeyText | None:
    """The id and secret of a key's text, or None when ``text`` is not shaped like a key."""
    found = _KEY.match(text.strip())
    return KeyText(found.group(1), found.group(2)) if found else None


def digest(text: str) -> bytes:
    """The SHA-256 of a key's text (what :class:`VerifiedKeys` remembers)."""
    return hashlib.sha256(text.encode()).digest()


class VerifiedKeys:
    """The keys whose secret this process verified, by key id: the SHA-256 of the verified text
    and the stored hash it verified against (a changed hash forgets the key). At most
    ``capacity`` keys, the least recently used forgotten first. Thread-safe."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._known: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def verified(self, key: KeyText, stored_hash: str) -> bool:
        """Whether ``key``'s text was verified against ``stored_hash`` before (compared in
        constant time)."""
        with self._lock:
            known = self._known.get(key.key_id)
            if known is not None:
                self._known.move_to_end(key.key_id)
        if known is None:
            return False
        same_text = hmac.compare_digest(known[0], digest(key.text))
        return same_text and hmac.compare_digest(known[1], stored_hash)

    def remember(self, key: KeyText, stored_hash: str) -> None:
        """Remember that ``key``'s text verified against ``stored_hash``."""
        with self._lock:
            self._known[key.key_id] = (digest(key.text), stored_hash)
            self._known.move_to_end(key.key_id)
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)

    def forget(self, key_id: str) -> None:
        """Forget the key ``key_id`` (it was revoked here; other processes read that from the
        database anyway)."""
        with self._lock:
            self._known.pop(key_id, None)
