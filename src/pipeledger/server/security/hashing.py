"""Slow hashes of secrets (API keys' secret parts and passwords): argon2id.

The parameters are argon2's recommended profile (RFC 9106, "low memory": 3 passes over 64 MiB,
4 lanes: about 50 ms on a server core). Tests lower them with ``PIPELEDGER_ARGON2_PROFILE=test``
(1 pass over 64 KiB, which no deployment should use); the profile is recorded in each hash, so
hashes made with either profile verify under both.
"""

from __future__ import annotations

import os
from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: The environment variable choosing the argon2 parameters: ``recommended`` (unset) or ``test``.
PROFILE_VARIABLE = "PIPELEDGER_ARGON2_PROFILE"


@cache
def hasher() -> PasswordHasher:
    """The argon2id hasher of the profile ``$PIPELEDGER_ARGON2_PROFILE`` names (read once).

    Raises:
        ValueError: an unknown profile name.
    """
    profile = os.environ.get(PROFILE_VARIABLE, "recommended").strip().lower() or "recommended"
    if profile == "recommended":
        return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
    if profile == "test":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    raise ValueError(f"${PROFILE_VARIABLE} is {profile!r}: use 'recommended' (or leave it unset)")


def hash_secret(secret: str) -> str:
    """The argon2id hash of ``secret`` (a PHC string with its own random salt and parameters)."""
    return hasher().hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    """Whether ``secret`` matches ``stored_hash`` (False for a malformed hash too)."""
    try:
        return hasher().verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


DUMMY_HASH_SECRET = "pipeledger-dummy-secret"


@cache
def dummy_hash() -> str:
    """A hash verified against when the looked-up principal does not exist, so that a wrong user
    name takes as long as a wrong password (no user enumeration by timing)."""
    return hash_secret(DUMMY_HASH_SECRET)
