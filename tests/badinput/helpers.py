"""What the bad-input tests of deliveries share: a business's numbers, posting, counting rows."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Contact, HistoryChunk, InboxDelivery, Message
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.onboarding.deliveries import (
    Business,
    chunk,
    signed,
    text,
)

NOW = int(time.time())
RECENT = NOW - 3 * 86_400
USER = "16505550000"
WABA = "102290129340398"


def inbox(rt: Runtime) -> list[InboxDelivery]:
    with rt.db.sessionmaker() as session:
        return list(session.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def stored(rt: Runtime) -> tuple[int, int, int]:
    return count(rt, Message), count(rt, Contact), count(rt, HistoryChunk)


def post(web: TestClient, payload: dict[str, Any] | bytes) -> InboxDelivery:
    raw, headers = signed(payload)
    response = web.post("/webhooks/meta", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    return None  # type: ignore[return-value]


def msg(**changes: Any) -> dict[str, Any]:
    m = text("wamid.BAD", USER, RECENT, "hello")
    for key, value in changes.items():
        if value is ...:
            m.pop(key)
        else:
            m[key] = value
    return m


def history_with(business: Business, bad: Any) -> dict[str, Any]:
    """A chunk with one good message and one bad item."""
    good = text("wamid.GOOD", USER, RECENT, "fine")
    return chunk(business, 1, 1, 10, {USER: [good, bad]})


def process(rt: Runtime, payload: dict[str, Any]) -> str:
    """Store a signed delivery and process it in the domain (no web, no Celery)."""
    raw, _ = signed(payload)
    with rt.db.session() as session:
        delivery_id = receive(session, raw).delivery_id
    with rt.db.session() as session:
        return process_delivery(session, delivery_id, settings=rt.settings).status
