"""Builders for the read API's tests: onboardings, peers, messages and contacts as rows, and a
client that walks a listing's pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from config import Settings
from models import Contact, Message, Peer
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox
from tests.conftest import FEED_TOKEN
from tests.onboarding.helpers import signup

FEED = {"Authorization": f"Bearer {FEED_TOKEN}"}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def onboarding(session: Session, sandbox: Sandbox, settings: Settings, cipher: TokenCipher) -> int:
    """A freshly signed-up onboarding (state ``received``), its id."""
    return signup(session, sandbox, settings, cipher).id


def peer(session: Session, onboarding_id: int, **fields: Any) -> int:
    row = Peer(onboarding_id=onboarding_id, **fields)
    session.add(row)
    session.flush()
    return row.id


def message(
    session: Session,
    onboarding_id: int,
    peer_id: int | None,
    wamid: str,
    minutes: float,
    **fields: Any,
) -> int:
    """A text message ``minutes`` after :data:`T0`, inbound from history unless told."""
    values: dict[str, Any] = {
        "thread": "16505550000",
        "direction": "inbound",
        "source": "history",
        "type": "text",
        "text_body": f"text of {wamid}",
        "media_attempts": 0,
    }
    values.update(fields)
    row = Message(
        onboarding_id=onboarding_id,
        peer_id=peer_id,
        wamid=wamid,
        sent_at=T0 + timedelta(minutes=minutes),
        **values,
    )
    session.add(row)
    session.flush()
    return row.id


def contact(session: Session, onboarding_id: int, peer_id: int, **fields: Any) -> int:
    row = Contact(onboarding_id=onboarding_id, peer_id=peer_id, changed_at=T0, **fields)
    session.add(row)
    session.flush()
    return row.id


def walk(
    client: TestClient, url: str, items: str, **params: str
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, page after page until ``next_cursor`` is null, and how many
    pages that took (bounded: a listing that never ends fails the test)."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for pages in range(1, 1000):
        query = params | ({"after": cursor} if cursor else {})
        answer = client.get(url, params=query, headers=FEED)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += body[items]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError(f"{url} never ended")
