"""Queries on the datasets table: uploaded files, keyed by the SHA-256 of their bytes.

Everything but :func:`get_content` leaves the (possibly large) content column unread.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from optimlab.service.db.models import Job, StoredDataset, utcnow

datasets = StoredDataset.__table__
# Every column but the content.
PUBLIC = [c for c in datasets.columns if c.name != "content"]


def insert_dataset(conn: Connection, *, id: str, name: str, filename: str, format: str,
                   target: str | None, rows: int, features: int, classes: int | None,
                   content: bytes, created_at: datetime | None = None,
                   owner: str | None = None) -> StoredDataset:
    """Store an upload; the same content stored before is left as it is and returned."""
    values: dict[str, Any] = {
        "id": id, "name": name, "filename": filename, "format": format, "target": target,
        "rows": rows, "features": features, "classes": classes, "size_bytes": len(content),
        "created_at": created_at or utcnow(), "content": content,
        "owner": owner}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(StoredDataset).values(values)
                     .on_conflict_do_nothing(index_elements=["id"]))
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(StoredDataset).values(values)
                     .on_conflict_do_nothing(index_elements=["id"]))
    else:  # pragma: no cover - the service runs on PostgreSQL or SQLite only
        if get_dataset(conn, id) is None:
            conn.execute(insert(StoredDataset).values(values))
    stored = get_dataset(conn, id)
    assert stored is not None
    return stored


def get_dataset(conn: Connection, dataset_id: str) -> StoredDataset | None:
    """The data set's row without its content."""
    row = conn.execute(select(*PUBLIC).where(datasets.c.id == dataset_id)).one_or_none()
    return None if row is None else StoredDataset(**row._mapping)


def get_content(conn: Connection, dataset_id: str) -> bytes | None:
    content = conn.scalar(select(datasets.c.content).where(datasets.c.id == dataset_id))
    return None if content is None else bytes(content)


def list_datasets(conn: Connection, *, owner: str | None = None) -> list[StoredDataset]:
    """Newest first, without content; ``owner``: only that owner's (None: everyone's)."""
    query = select(*PUBLIC).order_by(datasets.c.created_at.desc(), datasets.c.id)
    if owner is not None:
        query = query.where(datasets.c.owner == owner)
    return [StoredDataset(**row._mapping) for row in conn.execute(query)]


def delete_dataset(conn: Connection, dataset_id: str) -> bool:
    """Remove the data set; False if there was none."""
    result = conn.execute(delete(StoredDataset).where(StoredDataset.id == dataset_id))
    return result.rowcount == 1


def jobs_using(conn: Connection, dataset_id: str) -> list[tuple[uuid.UUID, str]]:
    """(id, status) of every job, in any state, whose spec reads the uploaded data set
    ``dataset_id``, oldest first.

    The spec is JSON: its ``data.kind`` and ``data.dataset_id`` are read with the
    database's own JSON path operators (``#>>`` on PostgreSQL, ``json_extract`` on SQLite).
    """
    query = (select(Job.id, Job.status)
             .where(Job.spec[("data", "kind")].as_string() == "upload",
                    Job.spec[("data", "dataset_id")].as_string() == dataset_id)
             .order_by(Job.created_at, Job.id))
    return [(row.id, row.status) for row in conn.execute(query)]
