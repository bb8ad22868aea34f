"""Error reports: sent to a real (local) HTTP endpoint speaking Sentry's protocol, with every
secret scrubbed as in the logs."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from config.errors import configure_error_reporting
from config.logging import register_secret

APP_SECRET = "app-secret-for-reports-0123456789"
TOKEN = "EAAGm0PX4ZCpsBAKZB0cRvuNkY2Z"
CODE = "AQD-signup-code-reported-xyz"


class Collector:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.arrived = threading.Event()


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Collector]]:
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            collector.bodies.append(raw)
            collector.arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1", collector
    finally:
        sentry_sdk.init()  # reporting off again for the other tests
        server.shutdown()
        server.server_close()


def test_no_dsn_reports_nothing() -> None:
    assert configure_error_reporting("", environment="production") is False


def test_a_reported_error_reaches_the_endpoint_without_any_secret(
    endpoint: tuple[str, Collector],
) -> None:
    dsn, collector = endpoint
    register_secret(CODE)
    assert configure_error_reporting(dsn, environment="production", static_secrets=[APP_SECRET])
    sentry_sdk.add_breadcrumb(message=f"exchanging code {CODE} with token {TOKEN}")
    deep: dict[str, object] = {"access_token": TOKEN}
    for level in range(12):
        deep = {f"level{level}": deep, "note": f"secret {APP_SECRET}"}
    sentry_sdk.set_context("signup", {"code": CODE, "deep": deep})
    try:
        raise RuntimeError(f"Graph refused token {TOKEN} for app secret {APP_SECRET}")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=10)
    assert collector.arrived.wait(10)
    body = b"\n".join(collector.bodies)
    assert b"RuntimeError" in body
    assert b"Graph refused token" in body
    for secret in (APP_SECRET, TOKEN, CODE):
        assert secret.encode() not in body
