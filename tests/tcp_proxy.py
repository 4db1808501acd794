"""One TCP proxy for the tests' network faults, in front of PostgreSQL or the API.

- ``cut()`` drops every open connection and refuses new ones until ``restore()``: what a
  client sees when its server restarts or the network fails (statements in flight fail
  with a closed connection, reconnecting fails).
- ``cuts``: each new connection takes the next byte count from the list and is closed
  after that many bytes of the server's answer (a truncated body mid-stream); connections
  past the list pass everything.
- Everything clients send is kept; ``requests()`` reads it as HTTP/1.1 requests.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_REQUEST = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.S)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], cuts: list[int] | None = None) -> None:
        self.upstream = upstream
        self.cuts = list(cuts or [])
        self.cut_off = threading.Event()
        self.refused = 0  # connections refused while cut
        self.cut_connections = 0  # connections closed after their byte count
        self.sent_by_client: list[bytes] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepting = threading.Thread(target=self._accept, daemon=True, name="tcp-proxy")
        self._accepting.start()

    def cut(self) -> None:
        """Drop every connection; refuse new ones until :meth:`restore`."""
        self.cut_off.set()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            _close(s)

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()
        self._accepting.join(timeout=5)

    def requests(self) -> list[Request]:
        with self._lock:
            sent = list(self.sent_by_client)
        return [Request(m.group(1).decode(), m.group(2).decode(), _headers(m.group(3)))
                for data in sent for m in _REQUEST.finditer(data)]

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.cut_off.is_set():
                self.refused += 1
                _close(downstream)  # accepted and hung up: the client's connect fails
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(downstream)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((downstream, upstream))
                budget = self.cuts.pop(0) if self.cuts else None
                self.sent_by_client.append(b"")
                index = len(self.sent_by_client) - 1
            threading.Thread(target=self._forward, args=(downstream, upstream, index),
                             daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, downstream, budget),
                             daemon=True).start()

    def _forward(self, downstream: socket.socket, upstream: socket.socket, index: int) -> None:
        try:
            while chunk := downstream.recv(65536):
                with self._lock:
                    self.sent_by_client[index] += chunk
                upstream.sendall(chunk)
            # The client hung up: pass that on, so the server closes its side too.
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(downstream, upstream)

    def _answer(self, upstream: socket.socket, downstream: socket.socket,
                budget: int | None) -> None:
        passed = 0
        try:
            while (budget is None or passed < budget) and (chunk := upstream.recv(65536)):
                if budget is not None:
                    chunk = chunk[:budget - passed]
                downstream.sendall(chunk)
                passed += len(chunk)
            if budget is not None and passed >= budget:
                with self._lock:
                    self.cut_connections += 1
        except OSError:
            pass
        finally:
            self._drop(downstream, upstream)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)
        for s in sockets:
            _close(s)


def _headers(block: bytes) -> dict[str, str]:
    lines = block.decode("latin-1").split("\r\n")
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@contextlib.contextmanager
def tcp_proxy(upstream: tuple[str, int] | str, cuts: list[int] | None = None
              ) -> Iterator[TcpProxy]:
    """A proxy in front of ``upstream``: (host, port), or an ``http://host:port`` URL."""
    if isinstance(upstream, str):
        host, _, port = upstream.removeprefix("http://").partition(":")
        upstream = (host, int(port))
    proxy = TcpProxy(upstream, cuts)
    try:
        yield proxy
    finally:
        proxy.close()
