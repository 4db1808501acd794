"""API keys: made, listed and revoked by the operator (``optimlab keys``); checked on
every request.

A key is ``olk_`` and 32 random bytes (urlsafe base64): too many to guess, so its SHA-256
is all that is stored, and looking it up by that hash is safe; the hashes are compared
once more with :func:`hmac.compare_digest`, in constant time, before the key counts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine

from optimlab.service.db import api_keys
from optimlab.service.db.models import ApiKey, utcnow
from optimlab.service.jobs.callers import Caller

PREFIX = "olk_"  # so that a key pasted somewhere is recognisable (and scannable) as ours
NAME_MAX = 200


class KeyNotFound(LookupError):
    def __init__(self, key_id: int) -> None:
        super().__init__(f"no active API key with id {key_id}")


@dataclass(frozen=True)
class NewKey:
    """The key itself, shown once, and its stored row."""

    key: str
    row: ApiKey


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, db: Engine, name: str, owner: str | None = None,
               admin: bool = False) -> NewKey:
    """A new random key for ``owner`` (default: the name)."""
    name, owner = name.strip(), (owner or name).strip()
    if not name or len(name) > NAME_MAX or not owner or len(owner) > NAME_MAX:
        raise ValueError(f"name and owner: 1 to {NAME_MAX} characters")
    key = PREFIX + secrets.token_urlsafe(32)
    with db.begin() as conn:
        row = api_keys.insert_key(conn, name=name, owner=owner, admin=admin,
                                  key_hash=hash_key(key))
    return NewKey(key, row)


def list_keys(*, db: Engine) -> list[ApiKey]:
    with db.connect() as conn:
        return api_keys.list_keys(conn)


def revoke_key(*, db: Engine, key_id: int) -> None:
    with db.begin() as conn:
        if not api_keys.revoke_key(conn, key_id):
            raise KeyNotFound(key_id)


def authenticate(*, db: Engine, key: str) -> Caller | None:
    """The caller the key acts as; None for an unknown or revoked key."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    presented = hash_key(key)
    with db.begin() as conn:
        row = api_keys.find_by_hash(conn, presented)
        if row is None or not hmac.compare_digest(row.key_hash, presented):
            return None
        if row.revoked_at is not None:
            return None
        api_keys.touch(conn, row, utcnow())
    return Caller(owner=row.owner, admin=row.admin)
