"""The web receiver keeps Meta's signature and content type with each delivery it stores."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import InboxDelivery
from onboarding.runtime import Runtime
from onboarding.web import create_app
from tests.onboarding.deliveries import signed
from tests.onboarding.relay.test_run import message


def test_a_posted_delivery_is_stored_with_its_signature_and_content_type(rt: Runtime) -> None:
    """``POST /webhooks/meta`` stores ``X-Hub-Signature-256`` and ``Content-Type`` as sent."""
    body, headers = signed(message(1))
    headers["Content-Type"] = "application/json; charset=utf-8"
    with TestClient(create_app(rt)) as client:
        assert client.post("/webhooks/meta", content=body, headers=headers).status_code == 200
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.body == body
    assert row.signature == headers["X-Hub-Signature-256"]
    assert row.content_type == "application/json; charset=utf-8"
