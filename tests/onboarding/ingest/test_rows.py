"""Message rows: direction, thread, status and body; media states; unusable items."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import (
    InboxDelivery,
    MediaState,
)
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    chunk,
    placeholder,
    text,
)
from tests.onboarding.ingest.helpers import USER, ago, detail, messages, post


def test_history_messages_get_direction_thread_status_and_body(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Direction comes from `from` against the business number; `to` and from_me are optional."""
    post(
        web,
        chunk(
            business,
            1,
            1,
            30,
            {
                USER: [
                    text("wamid.A1", business.number, ago(3), "Your order ships tomorrow", to=USER),
                    {
                        **text("wamid.A2", USER, ago(3), "Great, thanks"),
                        "history_context": {"status": "READ", "from_me": False},
                    },
                ]
            },
        ),
    )
    stored = messages(rt)
    assert stored["wamid.A1"].direction == "outbound"
    assert stored["wamid.A1"].thread == USER
    assert stored["wamid.A1"].status == "READ"
    assert stored["wamid.A2"].direction == "inbound"
    assert stored["wamid.A2"].text_body == "Great, thanks"
    assert stored["wamid.A2"].source == "history"


def test_media_placeholders_older_than_14_days_are_skipped_newer_await(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A placeholder from 20 days ago is skipped_too_old; one from 3 days ago awaits its media."""
    post(
        web,
        chunk(
            business,
            1,
            1,
            40,
            {
                USER: [
                    placeholder("wamid.old_img", USER, ago(20)),
                    placeholder("wamid.new_img", USER, ago(3)),
                ]
            },
        ),
    )
    stored = messages(rt)
    assert stored["wamid.old_img"].media_state == MediaState.SKIPPED_TOO_OLD
    assert stored["wamid.new_img"].media_state == MediaState.AWAITING
    counts = detail(rt, business)["counts"]
    assert counts["media_skipped_too_old"] == 1
    assert counts["media_awaiting"] == 1


def test_bad_messages_are_skipped_and_counted_not_fatal(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Items with a bad id, timestamp or type are rejected one by one; the rest is stored."""
    post(
        web,
        chunk(
            business,
            1,
            1,
            10,
            {
                USER: [
                    text("wamid.good", USER, ago(2), "fine"),
                    {"from": USER, "timestamp": str(ago(2)), "type": "text"},
                    {"from": USER, "id": "wamid.neg", "timestamp": "-5", "type": "text"},
                    {
                        "from": USER,
                        "id": "wamid.future",
                        "timestamp": str(ago(-400)),
                        "type": "text",
                    },
                    {"from": USER, "id": "wamid.notype", "timestamp": str(ago(2))},
                    "not an object",
                    {**text("wamid.nul", USER, ago(2), "a\x00b")},
                ]
            },
        ),
    )
    stored = messages(rt)
    assert set(stored) == {"wamid.good", "wamid.nul"}
    assert stored["wamid.nul"].text_body == "ab"
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.summary is not None
    assert row.summary["history"]["rejected"] == 5
