"""A provider's webhook receiver on 127.0.0.1: records what it gets, answers as told."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from onboarding.meta.signatures import signature_valid


@dataclass(frozen=True)
class Got:
    """One request as the receiver got it (header names lower-cased)."""

    headers: dict[str, str]
    body: bytes

    def signed_by(self, app_secret: str) -> bool:
        return signature_valid(self.body, self.headers.get("x-hub-signature-256"), app_secret)


class ProviderReceiver:
    """A real HTTP server standing in for the provider's webhook receiver.

    Answers each request with the next of ``statuses``, then ``status``; ``on_request`` is called
    with each request it accepted (2xx), e.g. to forward ``account_update`` to coexist.
    """

    def __init__(
        self,
        status: int = 200,
        statuses: Iterable[int] = (),
        on_request: Callable[[Got], None] | None = None,
    ) -> None:
        self.status = status
        self._statuses = deque(statuses)
        self._lock = threading.Lock()
        self.requests: list[Got] = []
        self.answers: list[int] = []
        self.on_request = on_request
        receiver = self

        class Endpoint(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                got = Got({k.lower(): v for k, v in self.headers.items()}, body)
                status = receiver._record(got)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if 200 <= status < 300 and receiver.on_request is not None:
                    receiver.on_request(got)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/meta/webhooks"

    def _record(self, got: Got) -> int:
        with self._lock:
            status = self._statuses.popleft() if self._statuses else self.status
            self.requests.append(got)
            self.answers.append(status)
            return status

    def accepted(self) -> list[Got]:
        """Requests answered 2xx, in order (a refused attempt is not counted)."""
        with self._lock:
            return [g for g, a in zip(self.requests, self.answers, strict=True) if 200 <= a < 300]

    def __enter__(self) -> ProviderReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
