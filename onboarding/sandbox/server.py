"""The sandbox as a real HTTP server, for the demo, staging and integration tests.

Each raw HTTP request becomes an ``httpx.Request`` for :meth:`Sandbox.handle`, and its
``httpx.Response`` is written back. When fault injection drops a response
(:class:`~onboarding.sandbox.injection.DroppedResponse`), the connection is closed without a byte
written, so the client sees a disconnect after the call took effect, as with a real network
failure.

Start it in a background thread::

    sandbox = Sandbox(app_id="1234", app_secret="s3cret")
    with SandboxServer(sandbox) as server:      # 127.0.0.1, a free port
        httpx.get(f"{server.url}/_sandbox/stats")

or block in the foreground with :func:`serve_forever` (for the CLI). Logs carry the method, the
path without its query string, and the status: never tokens, codes or the app secret.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, cast

import httpx

from onboarding.sandbox.errors import JSON_CONTENT_TYPE
from onboarding.sandbox.facade import Sandbox
from onboarding.sandbox.injection import DroppedResponse

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 10 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT: Final = 30.0
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te"}
)
_QUERY: Final = re.compile(r"\?\S*")
_INTERNAL_ERROR: Final = json.dumps(
    {
        "error": {
            "message": "An unknown error has occurred.",
            "type": "OAuthException",
            "code": 1,
            "fbtrace_id": "SandboxInternalError000",
        }
    }
).encode()


class _BadRequestError(Exception):
    """The raw HTTP request cannot be turned into an ``httpx.Request``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its sandbox and can cut its open connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (slow, and not needed)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host.decode() if isinstance(host, bytes) else str(host)
        self.server_port = port

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Track the connection so :meth:`close_connections` can end it."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        """Forget the connection and close it."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open (keep-alive) connection so its handler thread exits."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("sandbox_connection_already_closed")


class _Handler(BaseHTTPRequestHandler):
    """Adapts one raw HTTP exchange to :meth:`Sandbox.handle`."""

    protocol_version = "HTTP/1.1"
    server_version = "coexist-sandbox"
    timeout = IDLE_CONNECTION_TIMEOUT
    disable_nagle_algorithm = True  # header and body go out as separate writes

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve()

    def do_PUT(self) -> None:
        """Serve a PUT."""
        self._serve()

    def do_DELETE(self) -> None:
        """Serve a DELETE."""
        self._serve()

    def do_PATCH(self) -> None:
        """Serve a PATCH."""
        self._serve()

    @property
    def _sandbox(self) -> Sandbox:
        return cast(_HTTPServer, self.server).sandbox

    def _serve(self) -> None:
        try:
            request = self._to_httpx()
        except _BadRequestError as error:
            self.close_connection = True
            self.send_error(error.status, error.reason)
            return
        try:
            response = self._sandbox.handle(request)
        except DroppedResponse as dropped:
            logger.info(
                "sandbox_response_dropped",
                extra={"endpoint": dropped.endpoint, "method": self.command},
            )
            self.close_connection = True
            return
        except Exception:
            logger.exception("sandbox_handler_failed", extra={"method": self.command})
            self._write(500, [("content-type", JSON_CONTENT_TYPE)], _INTERNAL_ERROR)
            return
        self._write(response.status_code, response.headers.multi_items(), response.content)

    def _to_httpx(self) -> httpx.Request:
        body = self._read_body()
        if self.path.startswith(("http://", "https://")):
            url = self.path
        else:
            host = self.headers.get("Host")
            if not host:
                server = cast(_HTTPServer, self.server)
                host = f"{server.server_name}:{server.server_port}"
            url = f"http://{host}{self.path}"
        headers = [
            (name, value) for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP
        ]
        try:
            return httpx.Request(self.command, url, headers=headers, content=body)
        except (httpx.InvalidURL, ValueError) as error:
            raise _BadRequestError(400, "malformed request URL") from error

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BadRequestError(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequestError(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BadRequestError(413, "request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequestError(400, "invalid chunked encoding") from None
            if size == 0:
                while self.rfile.readline(1024) not in {b"\r\n", b"\n", b""}:
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequestError(413, "request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _write(self, status: int, headers: Any, content: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Log through ``logging``, with every query string (codes, tokens) stripped."""
        logger.debug("sandbox_http %s", _QUERY.sub("?[redacted]", format % args))


class SandboxServer:
    """Serves a :class:`Sandbox` over HTTP from a background thread."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for ``sandbox`` on ``host:port`` (port 0 picks a free port)."""
        self.sandbox = sandbox
        self._host = host
        self._port = port
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind, start serving in a daemon thread and return the base URL."""
        if self._server is not None:
            raise RuntimeError("sandbox server already started")
        server = _HTTPServer((self._host, self._port), self.sandbox)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="coexist-sandbox-server",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        logger.info("sandbox_server_started", extra={"url": self.url})
        return self.url

    def stop(self) -> None:
        """Stop serving, close open connections and the socket; a no-op if not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None
        logger.info("sandbox_server_stopped")

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``; only while started."""
        if self._server is None:
            raise RuntimeError("sandbox server not started")
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"

    def __enter__(self) -> SandboxServer:
        """Start the server (unless already started) and return it."""
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def serve_forever(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``sandbox`` in the foreground until interrupted (for the CLI)."""
    server = _HTTPServer((host, port), sandbox)
    bound_host, bound_port = server.server_address[:2]
    logger.info("sandbox_server_listening", extra={"host": str(bound_host), "port": bound_port})
    try:
        server.serve_forever()
    finally:
        server.close_connections()
        server.server_close()
