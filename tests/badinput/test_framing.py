"""Request framing on both endpoints: bodies counted as they stream, never as headers claim.

A request carrying ``Content-Length`` beside ``Transfer-Encoding`` is a request-smuggling shape
(RFC 9112 §6.3): the server frames such a body by the chunked encoding, whatever length it
declares. Such requests are refused with ``400`` before any of the body is read; a chunked body
is cut off with ``413`` as soon as it passes the limit. Nothing is stored. The same requests are
sent over raw sockets to the real server in ``tests/integration/test_web_edges.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from models import InboxDelivery
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.onboarding.deliveries import signed


def inbox(rt: Runtime) -> int:
    return count(rt, InboxDelivery)


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param({"Content-Length": "5", "Transfer-Encoding": "chunked"}, id="cl-and-te"),
        pytest.param({"Content-Length": "0", "Transfer-Encoding": "chunked"}, id="cl-zero-and-te"),
        pytest.param(
            {"Content-Length": "5", "Transfer-Encoding": "gzip, chunked"}, id="cl-and-te2"
        ),
    ],
)
def test_signed_delivery_framed_two_ways_is_400_and_stores_nothing(
    web: TestClient, rt: Runtime, framing: dict[str, str]
) -> None:
    """Content-Length beside Transfer-Encoding is refused before the body is read, signed or not."""
    limit = rt.settings.webhook_max_body_bytes
    raw = b'{"entry":"' + b"x" * (limit + 1024) + b'"}'
    _, headers = signed(raw)

    def chunks() -> Iterator[bytes]:
        yield raw

    response = web.post("/webhooks/meta", content=chunks(), headers={**headers, **framing})
    assert response.status_code == 400
    assert response.json()["error"] == "ambiguous_framing"
    assert inbox(rt) == 0


def test_chunked_delivery_over_the_limit_is_413_and_stores_nothing(
    web: TestClient, rt: Runtime
) -> None:
    """A signed chunked body (no Content-Length) is counted as it streams, cut off at the limit."""
    limit = rt.settings.webhook_max_body_bytes
    raw = b'{"entry":"' + b"x" * (limit - 11) + b'"}'
    _, headers = signed(raw)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 65_536):
            yield raw[start : start + 65_536]

    response = web.post("/webhooks/meta", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert inbox(rt) == 0
