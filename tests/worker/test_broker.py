"""The embedded folder broker, through real kombu connections on our transport."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from optimlab.service.settings import Settings
from optimlab.worker.broker import TRANSPORT, ensure_folders


def connect(tmp_path: Path) -> Connection:
    options = Settings(data_dir=tmp_path, database_url=None,
                       broker_url=None).broker_transport_options()
    ensure_folders(options)
    return Connection("filesystem://", transport=TRANSPORT, transport_options=options)


def jobs_queue() -> Queue:
    return Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")


def publish(conn: Connection, payloads: list[dict[str, Any]]) -> None:
    queue = jobs_queue()
    with conn.Producer() as producer:
        for payload in payloads:
            producer.publish(payload, exchange=queue.exchange, routing_key="jobs",
                             declare=[queue])


def drain(conn: Connection) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    with conn.SimpleQueue(jobs_queue()) as queue:
        while True:
            try:
                message = queue.get(timeout=0.3)
            except queue.Empty:
                return received
            received.append(message.payload)
            message.ack()


def test_messages_arrive_once_in_order_and_nothing_is_left_behind(tmp_path: Path) -> None:
    with connect(tmp_path) as conn:
        publish(conn, [{"n": i} for i in range(20)])
        received = drain(conn)

    assert received == [{"n": i} for i in range(20)]
    broker = tmp_path / "broker"
    assert list((broker / "messages").iterdir()) == []
    assert list((broker / "processing").iterdir()) == []


def test_messages_are_never_visible_half_written(tmp_path: Path) -> None:
    with connect(tmp_path) as conn:
        publish(conn, [{"blob": "x" * 1_000_000}])
    names = [p.name for p in (tmp_path / "broker" / "messages").iterdir()]

    (name,) = names
    assert name.endswith(".jobs.msg")
    assert not any(n.endswith(".partial") for n in names)


def test_two_consumers_never_get_the_same_message(tmp_path: Path) -> None:
    with connect(tmp_path) as conn:
        publish(conn, [{"n": i} for i in range(200)])
    results: list[list[dict[str, Any]]] = [[], []]

    def consume(slot: int) -> None:
        with connect(tmp_path) as conn:
            results[slot] = drain(conn)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    everything = results[0] + results[1]
    assert sorted(m["n"] for m in everything) == list(range(200))


def test_the_transport_writes_only_inside_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    outside = set(tmp_path.iterdir())
    with connect(data) as conn:
        publish(conn, [{"n": 1}])
        drain(conn)

    assert set(tmp_path.iterdir()) == outside
    assert {p.name for p in (data / "broker").iterdir()} == {"messages", "control",
                                                               "processing"}


def test_purge_empties_the_queue_folders(tmp_path: Path) -> None:
    from optimlab.worker.broker import purge_messages

    with connect(tmp_path) as conn:
        publish(conn, [{"n": i} for i in range(3)])
    options = Settings(data_dir=tmp_path, database_url=None,
                       broker_url=None).broker_transport_options()

    assert purge_messages(options) == 3
    with connect(tmp_path) as conn:
        assert drain(conn) == []
