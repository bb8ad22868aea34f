"""App echoes, and users' edits and revokes applied to stored messages."""

from __future__ import annotations

from fastapi.testclient import TestClient

from models import (
    Onboarding,
)
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    chunk,
    echoes,
    envelope,
    text,
)
from tests.onboarding.ingest.helpers import USER, ago, detail, messages, post


def test_echoes_are_outbound_app_messages_and_update_app_activity(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An echo is stored as outbound app_echo and moves the last app activity forward."""
    ts = ago(0.01)
    post(web, echoes(business, ("wamid.E1", USER, ts, "See you at 5pm")))
    echo = messages(rt)["wamid.E1"]
    assert (echo.direction, echo.source, echo.thread) == ("outbound", "app_echo", USER)
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        assert onboarding.last_app_activity_at is not None
        assert int(onboarding.last_app_activity_at.timestamp()) == ts
    assert detail(rt, business)["counts"]["app_echoes"] == 1


def test_same_wamid_via_history_and_echo_is_one_message(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A message seen in history and as an echo is stored once."""
    ts = ago(1)
    post(
        web,
        chunk(business, 0, 1, 10, {USER: [text("wamid.S", business.number, ts, "hi", to=USER)]}),
    )
    post(web, echoes(business, ("wamid.S", USER, ts, "hi")))
    assert len(messages(rt)) == 1


def test_user_edit_and_revoke_apply_to_stored_messages(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit replaces the body; a revoke removes it and marks the message revoked."""
    post(
        web,
        chunk(
            business,
            0,
            1,
            10,
            {
                USER: [
                    text("wamid.U1", USER, ago(1), "typo"),
                    text("wamid.U2", USER, ago(1), "oops"),
                ]
            },
        ),
    )
    post(
        web,
        envelope(
            business,
            "messages",
            {
                "messages": [
                    {
                        "from": USER,
                        "id": "wamid.ed",
                        "timestamp": str(ago(0)),
                        "type": "edit",
                        "edit": {
                            "original_message_id": "wamid.U1",
                            "message": {"type": "text", "text": {"body": "fixed"}},
                        },
                    },
                    {
                        "from": USER,
                        "id": "wamid.rv",
                        "timestamp": str(ago(0)),
                        "type": "revoke",
                        "revoke": {"original_message_id": "wamid.U2"},
                    },
                ],
                "errors": [{"code": 131060, "title": "Unsupported message"}],
            },
        ),
    )
    stored = messages(rt)
    assert stored["wamid.U1"].text_body == "fixed"
    assert stored["wamid.U1"].edited_at is not None
    assert stored["wamid.U2"].text_body is None
    assert stored["wamid.U2"].revoked_at is not None
