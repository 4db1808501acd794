"""Queries on the workers table: who consumes which queues, and is still alive."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, delete, select, update

from optimlab.service.db.models import Worker, utcnow

workers = Worker.__table__


def register_worker(conn: Connection, *, name: str, queues: list[str], device: str,
                    pid: int) -> None:
    now = utcnow()
    conn.execute(delete(workers).where(workers.c.name == name))
    conn.execute(workers.insert().values(name=name, queues=",".join(queues), device=device,
                                         pid=pid, started_at=now, last_seen=now))


def beat(conn: Connection, name: str) -> None:
    conn.execute(update(workers).where(workers.c.name == name).values(last_seen=utcnow()))


def unregister_worker(conn: Connection, name: str) -> None:
    conn.execute(delete(workers).where(workers.c.name == name))


def live_workers(conn: Connection, *, within: timedelta) -> list[Worker]:
    query = select(workers).where(workers.c.last_seen >= utcnow() - within)
    return [Worker(**row._mapping) for row in conn.execute(query)]
