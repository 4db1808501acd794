"""Queries on the workers table: who consumes which queues, and is still alive."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, delete, insert, select, update

from optimlab.service.db.models import Worker, utcnow


def register_worker(conn: Connection, *, name: str, queues: list[str], device: str,
                    pid: int) -> None:
    now = utcnow()
    conn.execute(delete(Worker).where(Worker.name == name))
    conn.execute(insert(Worker).values(name=name, queues=",".join(queues), device=device,
                                         pid=pid, started_at=now, last_seen=now))


def beat(conn: Connection, name: str) -> None:
    conn.execute(update(Worker).where(Worker.name == name).values(last_seen=utcnow()))


def unregister_worker(conn: Connection, name: str) -> None:
    conn.execute(delete(Worker).where(Worker.name == name))


def is_registered(conn: Connection, name: str) -> bool:
    return conn.scalar(select(Worker.name).where(Worker.name == name)) is not None


def live_workers(conn: Connection, *, within: timedelta) -> list[Worker]:
    query = select(Worker.__table__).where(Worker.last_seen >= utcnow() - within)
    return [Worker(**row._mapping) for row in conn.execute(query)]
