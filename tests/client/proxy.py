"""A TCP proxy in front of the server that drops connections for real, and records requests.

Each new connection takes the next cut from ``cuts``: after that many bytes of the
server's answer, both sockets are closed mid-stream (the client sees a truncated chunked
body, as after a network failure). Connections past the list pass everything through.
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


class CuttingProxy:
    def __init__(self, upstream: str, cuts: list[int] | None = None) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.cuts = list(cuts or [])
        self.sent_by_client: list[bytes] = []
        self.cut_connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def requests(self) -> list[Request]:
        with self._lock:
            sent = list(self.sent_by_client)
        return [Request(m.group(1).decode(), m.group(2).decode(), _headers(m.group(3)))
                for data in sent for m in _REQUEST.finditer(data)]

    def close(self) -> None:
        self._listener.close()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                cut = self.cuts.pop(0) if self.cuts else None
                self.sent_by_client.append(b"")
                index = len(self.sent_by_client) - 1
            thread = threading.Thread(target=self._serve, args=(downstream, cut, index),
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, downstream: socket.socket, cut: int | None, index: int) -> None:
        upstream = socket.create_connection(self.upstream)
        forward = threading.Thread(target=self._requests, args=(downstream, upstream, index),
                                   daemon=True)
        forward.start()
        passed = 0
        try:
            while cut is None or passed < cut:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                if cut is not None:
                    chunk = chunk[:cut - passed]
                downstream.sendall(chunk)
                passed += len(chunk)
            if cut is not None and passed >= cut:
                with self._lock:
                    self.cut_connections += 1
        except OSError:
            pass
        finally:
            for s in (downstream, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            forward.join(timeout=5)

    def _requests(self, downstream: socket.socket, upstream: socket.socket, index: int) -> None:
        try:
            while chunk := downstream.recv(65536):
                with self._lock:
                    self.sent_by_client[index] += chunk
                upstream.sendall(chunk)
            # The client hung up: pass that on, so the server closes its side too.
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _headers(block: bytes) -> dict[str, str]:
    lines = block.decode("latin-1").split("\r\n")
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


@contextlib.contextmanager
def proxy(upstream: str, cuts: list[int] | None = None) -> Iterator[CuttingProxy]:
    p = CuttingProxy(upstream, cuts)
    try:
        yield p
    finally:
        p.close()
