"""Meta's side of webhook delivery in chaos tests: post signed deliveries, record every answer.

A :class:`Poster` posts deliveries one after another from a thread, at a steady pace, while the
test breaks something; every answer (status, start and end on the monotonic clock) is kept, so
the test can say afterwards what was answered while a service was down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

import httpx

from onboarding.sandbox import ReceivedWebhook

#: Status recorded when no HTTP answer came back at all (connection refused, timeout...).
NO_ANSWER = 0


@dataclass(frozen=True)
class Answer:
    """What the web app answered to one POST of one delivery."""

    delivery: ReceivedWebhook
    started: float
    ended: float
    status: int
    error: str = ""

    def within(self, start: float, end: float) -> bool:
        """Whether the whole request happened between ``start`` and ``end``."""
        return start <= self.started and self.ended <= end


def post_delivery(client: httpx.Client, delivery: ReceivedWebhook) -> Answer:
    """POST one delivery's exact bytes and headers (signature included) to /webhooks/meta."""
    started = time.monotonic()
    try:
        response = client.post(
            "/webhooks/meta", content=delivery.body, headers=dict(delivery.headers)
        )
    except httpx.HTTPError as exc:
        return Answer(delivery, started, time.monotonic(), NO_ANSWER, repr(exc))
    return Answer(delivery, started, time.monotonic(), response.status_code, response.text[:200])


def meta_client(base_url: str, *, timeout: float = 10.0) -> httpx.Client:
    """An HTTP client posting to the web app as Meta does."""
    return httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)


def post_all(base_url: str, deliveries: Iterable[ReceivedWebhook]) -> list[Answer]:
    """POST each delivery once, in order; every answer."""
    with meta_client(base_url) as client:
        return [post_delivery(client, delivery) for delivery in deliveries]


class Poster:
    """Posts ``deliveries`` in order from a background thread, one every ``pace`` seconds."""

    def __init__(self, base_url: str, deliveries: Sequence[ReceivedWebhook], *, pace: float):
        self._base_url = base_url
        self._deliveries = list(deliveries)
        self._pace = pace
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meta-poster", daemon=True)

    def _run(self) -> None:
        with meta_client(self._base_url) as client:
            for delivery in self._deliveries:
                if self._stop.is_set():
                    return
                answer = post_delivery(client, delivery)
                with self._lock:
                    self._answers.append(answer)
                self._stop.wait(self._pace)

    @property
    def total(self) -> int:
        return len(self._deliveries)

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> list[Answer]:
        """Wait until every delivery was posted; the answers. Raises if that takes too long."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"posting {self.total} deliveries took over {timeout:g} s")
        return self.answers()

    def __enter__(self) -> Poster:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(15.0)
