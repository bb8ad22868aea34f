"""Posting signed deliveries and reading back what ingestion stored."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import (
    DroppedMessage,
    FeedEvent,
    InboxDelivery,
    Message,
    MessageChange,
    Onboarding,
    Peer,
)
from onboarding.ingest.messages import apply_message_events
from onboarding.ingest.rows import Context, Tally
from onboarding.runtime import Runtime
from onboarding.views import onboarding_detail
from tests.onboarding.deliveries import Business, signed

DAY = 86_400
USER = "16505550000"
OTHER = "447700900123"


def ago(days: float) -> int:
    return int(time.time() - days * DAY)


def post(web: TestClient, payload: dict[str, Any] | bytes) -> None:
    raw, headers = signed(payload)
    assert web.post("/webhooks/meta", content=raw, headers=headers).status_code == 200


def messages(rt: Runtime) -> dict[str, Message]:
    with rt.db.sessionmaker() as session:
        return {m.wamid: m for m in session.scalars(select(Message))}


def detail(rt: Runtime, business: Business) -> dict[str, Any]:
    with rt.db.sessionmaker() as session:
        return onboarding_detail(session, session.get_one(Onboarding, business.onboarding_id))


def dropped(rt: Runtime) -> dict[str, str]:
    """Recorded dropped messages: wamid -> reason."""
    with rt.db.sessionmaker() as session:
        return {d.wamid: d.reason for d in session.scalars(select(DroppedMessage))}


def kept_changes(rt: Runtime) -> dict[str, MessageChange]:
    """Edits and revokes waiting for their message, by their own wamid."""
    with rt.db.sessionmaker() as session:
        return {c.wamid: c for c in session.scalars(select(MessageChange))}


def last_summary(rt: Runtime, field: str) -> dict[str, Any]:
    """The inbox summary of ``field`` in the latest processed delivery."""
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery).order_by(InboxDelivery.id.desc())).first()
        assert row is not None
        assert row.summary is not None
        summary: dict[str, Any] = row.summary[field]
        return summary


def peer_rows(rt: Runtime) -> list[tuple[str | None, str | None, str | None]]:
    """Every peer as (phone, user_id, username), in creation order."""
    with rt.db.sessionmaker() as session:
        return [
            (p.phone, p.user_id, p.username)
            for p in session.scalars(select(Peer).order_by(Peer.id))
        ]


def peer_of(rt: Runtime, wamid: str) -> tuple[str | None, str | None]:
    """The (phone, user_id) of the peer a message belongs to."""
    with rt.db.sessionmaker() as session:
        found = session.scalars(
            select(Peer).join(Message, Message.peer_id == Peer.id).where(Message.wamid == wamid)
        ).one()
        return found.phone, found.user_id


def apply(rt: Runtime, business: Business, payload: dict[str, Any]) -> Tally:
    """The ``messages`` handler on one delivery's value, in its own session."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, rt.settings)
        return apply_message_events(session, ctx, payload["entry"][0]["changes"][0]["value"])


def feed(rt: Runtime, type: str) -> list[dict[str, Any]]:
    """The bodies of the feed events of one type, oldest first."""
    with rt.db.sessionmaker() as session:
        return list(
            session.scalars(
                select(FeedEvent.body).where(FeedEvent.type == type).order_by(FeedEvent.id)
            )
        )
