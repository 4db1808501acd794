"""A TCP proxy that can cut the line: every open connection dropped, new ones refused.

Put between a worker and PostgreSQL, it is a database outage as the worker sees one: the
statements in flight fail with a closed connection, and reconnecting fails until
``restore``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.cut_off = threading.Event()
        self.refused = 0  # connections refused while cut
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._accepting = threading.Thread(target=self._accept, daemon=True)
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
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@contextlib.contextmanager
def tcp_proxy(upstream: tuple[str, int]) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
