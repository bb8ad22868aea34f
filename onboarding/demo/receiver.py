"""The provider's app in the demo: a loopback HTTP receiver of the pushed event feed.

It does what a provider's endpoint should: verifies every request's Standard Webhooks signature
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) with the ``standardwebhooks``
package before reading it, answers ``401`` to one that does not verify, drops a batch it has
already taken (the same ``webhook-id``: delivery is at least once), and checks that events come
in feed order. The demo prints what it received.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from onboarding.feed.log import Cursor

#: Largest request body the receiver reads (a batch of events with their messages).
MAX_BODY = 64 * 1024 * 1024


@dataclass
class Received:
    """What the receiver took, as the demo summary shows it."""

    requests: int = 0
    verified: int = 0
    refused: int = 0
    duplicates: int = 0
    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    out_of_order: int = 0
    last_cursor: Cursor = field(default_factory=Cursor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "signatures_verified": self.verified,
            "refused": self.refused,
            "duplicate_batches": self.duplicates,
            "events": self.events,
            "events_by_type": dict(sorted(self.by_type.items())),
            "messages": self.messages,
            "out_of_order": self.out_of_order,
        }


class FeedReceiver:
    """Takes pushed batches: verified, deduplicated by ``webhook-id``, order checked."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.received = Received()
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status for one request."""
        with self._lock:
            self.received.requests += 1
            try:
                batch = self.webhook.verify(body, headers)
            except (WebhookVerificationError, ValueError):
                self.received.refused += 1
                return 401
            self.received.verified += 1
            webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
            if webhook_id in self._seen:
                self.received.duplicates += 1
                return 200
            self._seen.add(webhook_id)
            for event in batch.get("events", []) if isinstance(batch, dict) else []:
                self._event(event)
            return 200

    def _event(self, event: dict[str, Any]) -> None:
        received = self.received
        received.events += 1
        received.by_type[str(event.get("type"))] += 1
        data = event.get("data") or {}
        if event.get("type") == "messages.stored":
            received.messages += int(data.get("count") or len(data.get("messages") or ()))
        cursor = Cursor.decode(str(event.get("cursor")))
        if cursor <= received.last_cursor:
            received.out_of_order += 1
        received.last_cursor = max(cursor, received.last_cursor)


@contextmanager
def serve_receiver(secret: str) -> Iterator[tuple[str, FeedReceiver]]:
    """A :class:`FeedReceiver` on a free loopback port until the block ends: (URL, receiver)."""
    receiver = FeedReceiver(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            status = receiver.take(body, dict(self.headers.items()))
            payload = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/coexist/events", receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
