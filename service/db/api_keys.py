"""Queries on the api_keys table: rows hold the SHA-256 of a key, never the key."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from optimlab.service.db.models import ApiKey, utcnow

# last_used_at is refreshed at most this often: a write per request would cost more than
# the request on a busy key, and a minute is as precise as "last used" needs.
TOUCH_EVERY = timedelta(seconds=60)


def insert_key(conn: Connection, *, name: str, owner: str, admin: bool,
               key_hash: str) -> ApiKey:
    key_id = conn.execute(insert(ApiKey).values(
        name=name, owner=owner, admin=admin, key_hash=key_hash, created_at=utcnow())
    ).inserted_primary_key
    assert key_id is not None
    found = get_key(conn, int(key_id[0]))
    assert found is not None
    return found


def get_key(conn: Connection, key_id: int) -> ApiKey | None:
    row = conn.execute(select(ApiKey.__table__).where(ApiKey.id == key_id)).one_or_none()
    return None if row is None else ApiKey(**row._mapping)


def find_by_hash(conn: Connection, key_hash: str) -> ApiKey | None:
    row = conn.execute(select(ApiKey.__table__)
                       .where(ApiKey.key_hash == key_hash)).one_or_none()
    return None if row is None else ApiKey(**row._mapping)


def list_keys(conn: Connection) -> list[ApiKey]:
    return [ApiKey(**row._mapping)
            for row in conn.execute(select(ApiKey.__table__).order_by(ApiKey.id))]


def revoke_key(conn: Connection, key_id: int) -> bool:
    """Mark the key revoked (kept, so that the list shows it); False if none or already."""
    result = conn.execute(update(ApiKey).where(ApiKey.id == key_id,
                                               ApiKey.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    return result.rowcount == 1


def touch(conn: Connection, key: ApiKey, now: datetime) -> None:
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        conn.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
