"""A TCP proxy in the test process that can cut a service off, and let it back.

Clients connect to :attr:`TcpProxy.port` instead of the service; each connection is piped to the
service by two threads. :meth:`TcpProxy.down` resets every open connection and, until
:meth:`TcpProxy.up`, resets each new one as soon as it is accepted: from the client's side the
service is unreachable (as when PostgreSQL crashes or the network between fails), while the
real service keeps running for everyone else::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
        proxy.down()
        proxy.up()
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

#: Bytes read from one side before they are written to the other.
CHUNK = 65_536
#: How often the accept loop looks whether the proxy is closing.
ACCEPT_POLL = 0.05


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0), waking any thread blocked on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``, switchable down and up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down = False
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self.refused = 0
        self.cut = 0
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="proxy-accept", daemon=True
        )

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down

    def down(self) -> int:
        """Reset every open connection and refuse new ones; how many were cut."""
        with self._lock:
            self._down = True
            victims, self._open = self._open, set()
            self.cut += len(victims) // 2
        for sock in victims:
            _reset(sock)
        return len(victims) // 2

    def up(self) -> None:
        """Let connections through again."""
        with self._lock:
            self._down = False

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.is_down:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._down:  # went down while connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(
                    target=self._pipe, args=(source, sink), name="proxy-pipe", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        # One side ended (or was reset by ``down``): end the pair, waking the other pipe.
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closing.set()
        self.down()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(5.0)
        for thread in self._threads:
            thread.join(5.0)

    def __enter__(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
