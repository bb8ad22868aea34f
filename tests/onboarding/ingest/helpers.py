"""Posting signed deliveries and reading back what ingestion stored."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Message, Onboarding
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
