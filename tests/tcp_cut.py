"""A TCP proxy that can cut a service away and bring it back (e.g. PostgreSQL for the API).

While cut, every open connection is closed and every new one is closed as soon as it is
accepted: the client sees what it sees when the server restarts or the network fails.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class TcpCut:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="tcp-cut").start()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            _close(s)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                _close(downstream)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(downstream)
                continue
            with self._lock:
                self._open += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        source.settimeout(None)
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@contextlib.contextmanager
def tcp_cut(host: str, port: int) -> Iterator[TcpCut]:
    proxy = TcpCut(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
