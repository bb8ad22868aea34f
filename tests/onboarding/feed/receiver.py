"""A provider's feed receiver on 127.0.0.1: verifies each request with ``standardwebhooks``,
records it, and answers a scripted status (or a random 500, or after a delay)."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: A Standard Webhooks secret: whsec_ and the base64 of 32 bytes.
SECRET = "whsec_" + base64.b64encode(b"feed-push-secret-for-the-tests!!").decode()


@dataclass
class Request:
    """One request the receiver got, verified or not, and what it answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = json.loads(self.body)["events"]
        return events


@dataclass
class FeedReceiver:
    """Answers 200 to every verified request unless told otherwise; 401 to unverified ones."""

    secret: str = SECRET
    port: int = 0
    #: Statuses for the next requests, in order; then ``fail_share`` decides.
    statuses: list[int] = field(default_factory=list)
    #: Share of requests answered 500 at random (seeded).
    fail_share: float = 0.0
    seed: int = 7
    #: Seconds to wait before answering (a slow receiver).
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    #: The most requests ever in progress at once.
    most_at_once: int = 0
    _at_once: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed"

    def start(self) -> FeedReceiver:
        verifier = Webhook(self.secret)
        rng = random.Random(self.seed)
        state = self

        class Endpoint(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with state._lock:
                    state._at_once += 1
                    state.most_at_once = max(state.most_at_once, state._at_once)
                try:
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    try:
                        verifier.verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                    if state.delay:
                        time.sleep(state.delay)
                    with state._lock:
                        if not verified:
                            status = 401
                        elif state.statuses:
                            status = state.statuses.pop(0)
                        else:
                            status = 500 if rng.random() < state.fail_share else 200
                        state.requests.append(Request(headers, body, verified, status))
                finally:
                    with state._lock:
                        state._at_once -= 1
                reply = b'{"ok":true}' if status < 300 else b'{"error":"not now"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Endpoint)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FeedReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        with self._lock:
            return self._at_once

    def acknowledged(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def delivered_ids(self) -> list[int]:
        """Event ids of every acknowledged batch, in the order they were acknowledged."""
        return [e["id"] for r in self.acknowledged() for e in r.events]
