"""Follow-ups, notification rows, a provider endpoint and Meta's /messages, for these tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from models import Database, FollowUp, FollowUpKind, FollowUpStatus, Notification, utcnow
from onboarding.followups.notifier import Notifier

#: A Standard Webhooks secret: whsec_ and the base64 of 32 bytes.
SECRET = "whsec_bm90aWZ5LXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODk="
PROVIDER_TOKEN = "EAAGprovider-system-user-token"
PROVIDER_NUMBER_ID = "109876543210987"
K = FollowUpKind


def add_follow_up(
    db: Database, onboarding_id: int, kind: K = K.COMPANION_RELINK, **content: Any
) -> int:
    with db.session() as session:
        row = FollowUp(
            onboarding_id=onboarding_id,
            kind=kind.value,
            series=0,
            step=0,
            due_at=utcnow(),
            status=FollowUpStatus.SCHEDULED.value,
            content=content,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


def deliver(db: Database, notifier: Notifier, follow_up_id: int) -> list[Any]:
    with db.sessionmaker() as session:
        return notifier.deliver(session, follow_up_id)


def follow_up(db: Database, follow_up_id: int) -> FollowUp:
    with db.sessionmaker() as session:
        return session.get_one(FollowUp, follow_up_id)


def notification(db: Database, follow_up_id: int, channel: str) -> Notification:
    with db.sessionmaker() as session:
        return session.scalars(
            select(Notification).where(
                Notification.follow_up_id == follow_up_id, Notification.channel == channel
            )
        ).one()


def interrupted(db: Database, follow_up_id: int, channel: str) -> int:
    """Leave the state a worker that died between record and answer leaves; its row id."""
    with db.session() as session:
        row = Notification(
            follow_up_id=follow_up_id,
            channel=channel,
            status="sending",
            attempts=1,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """The provider's endpoint on 127.0.0.1: records requests, answers scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    #: Extra response headers, for every answer.
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else 200


@dataclass
class FakeMessages:
    """``POST /{phone-number-id}/messages`` in Meta's shapes; records what it was sent."""

    errors: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.errors:
            status, error = self.errors.pop(0)
            return httpx.Response(status, json={"error": {"fbtrace_id": "AbCdEf123", **error}})
        to = json.loads(request.content)["to"]
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.X{len(self.requests)}"}],
            },
        )

    def sent(self, n: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[n].content)
        return data
