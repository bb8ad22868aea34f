"""Where webhook deliveries go and what became of them.

A :data:`Sink` is an in-process target (a :class:`CollectingSink` keeps what it receives as
:class:`ReceivedWebhook` values); :class:`HttpTarget` posts to a callback URL instead. Each
delivery's outcome is a :class:`DeliveryRecord`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from onboarding.sandbox.signing import verify_signature

Sink = Callable[[bytes, dict[str, str]], int]
"""An in-process delivery target: gets the body bytes and headers, returns the HTTP status."""


@dataclass(slots=True)
class DeliveryRecord:
    """The outcome of one delivery (a duplicate is a delivery of its own)."""

    sequence: int
    field: str
    kind: str
    """``history``, ``history_media``, ``history_declined``, ``contacts``, ``echoes`` or
    ``change`` (one sent on demand)."""
    phone_number_id: str
    size: int
    duplicate: bool = False
    attempts: int = 0
    delivered: bool = False
    failed: bool = False
    skipped: bool = False
    """Not sent: the app was not subscribed to the WABA at delivery time."""
    last_status: int | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """A delivery as a sink received it: the exact body bytes and the headers."""

    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The decoded body."""
        return json.loads(self.body)

    @property
    def field(self) -> str:
        """The change's ``field``; ``history`` for an envelope-less declined body."""
        payload = self.json()
        if "entry" in payload:
            return str(payload["entry"][0]["changes"][0]["field"])
        return "history"

    @property
    def value(self) -> dict[str, Any]:
        """The change's ``value`` (the whole body when it came without the envelope)."""
        payload = self.json()
        if "entry" in payload:
            value: dict[str, Any] = payload["entry"][0]["changes"][0]["value"]
            return value
        return dict(payload)

    def signature_valid(self, app_secret: str) -> bool:
        """Whether the ``X-Hub-Signature-256`` header signs these exact bytes."""
        header = next(
            (
                value
                for name, value in self.headers.items()
                if name.lower() == "x-hub-signature-256"
            ),
            None,
        )
        return verify_signature(self.body, header, app_secret)


class CollectingSink:
    """An in-process sink keeping every delivery, answering ``statuses`` then ``status``.

    ``CollectingSink(statuses=[500])`` fails the first attempt and accepts the rest.
    """

    def __init__(self, status: int = 200, statuses: Iterable[int] = ()) -> None:
        """Answer each delivery with the next of ``statuses``, then with ``status``."""
        self.status = status
        self._statuses = deque(statuses)
        self._lock = threading.Lock()
        self.received: list[ReceivedWebhook] = []

    def __call__(self, body: bytes, headers: dict[str, str]) -> int:
        """Record the delivery and answer its status."""
        with self._lock:
            self.received.append(ReceivedWebhook(body, dict(headers)))
            return self._statuses.popleft() if self._statuses else self.status

    def payloads(self, field: str | None = None) -> list[Any]:
        """Decoded bodies received so far, optionally only those of one ``field``."""
        with self._lock:
            received = list(self.received)
        return [item.json() for item in received if field is None or item.field == field]

    def values(self, field: str | None = None) -> list[dict[str, Any]]:
        """The ``value`` of each body received so far, optionally only one ``field``'s."""
        with self._lock:
            received = list(self.received)
        return [item.value for item in received if field is None or item.field == field]

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self.received.clear()


class HttpTarget:
    """A lazily opened ``httpx.Client`` for one worker, closed when the worker ends."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body`` to ``url`` (no redirects, no proxies) and return the HTTP status."""
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False, trust_env=False)
        response = self._client.post(url, content=body, headers=dict(headers), timeout=timeout)
        return response.status_code

    def close(self) -> None:
        """Close the client, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None
