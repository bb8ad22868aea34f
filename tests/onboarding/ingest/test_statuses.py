"""Statuses of the business's messages: forward only, whatever order they come in, and kept
until their message is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Direction, MediaState, MessageSource, PendingStatus, utcnow
from onboarding.ingest import statuses as statuses_module
from onboarding.runtime import Runtime
from onboarding.store import upsert_messages
from tests.onboarding.deliveries import Business, echoes
from tests.onboarding.ingest.helpers import ago, apply, detail, feed, last_summary, messages, post
from tests.onboarding.ingest.live_payloads import (
    REENGAGEMENT_ERROR,
    USER,
    status,
    statuses,
)

WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3QkE0NTZDRjE1MUYwQjE5RjUA"


def api_message(rt: Runtime, business: Business, wamid: str = WAMID) -> None:
    """A message the business sent through the Cloud API, as the send records it."""
    with rt.db.session() as session:
        upsert_messages(
            session,
            [
                {
                    "onboarding_id": business.onboarding_id,
                    "wamid": wamid,
                    "thread": USER,
                    "direction": Direction.OUTBOUND.value,
                    "source": MessageSource.API.value,
                    "sent_at": datetime.fromtimestamp(ago(0.01), tz=UTC),
                    "type": "text",
                    "text_body": "Your order shipped",
                    "status": "accepted",
                    "raw": None,
                    "media_state": MediaState.NONE.value,
                    "media_id": None,
                    "media_mime": None,
                    "media_sha256": None,
                    "media_id_at": None,
                    "peer_id": None,
                }
            ],
        )


def moves(rt: Runtime) -> list[tuple[str, str | None]]:
    """Each ``message.status`` event as (status, previous), oldest first."""
    return [(b["status"], b["previous"]) for b in feed(rt, "message.status")]


def test_statuses_delivered_out_of_order_only_move_forward(rt: Runtime, business: Business) -> None:
    """delivered, then read, then a late sent: the message ends read, and the late sent
    changes nothing."""
    api_message(rt, business)
    t = ago(0.005)
    for state, ts in (("delivered", t + 2), ("read", t + 3), ("sent", t + 1)):
        apply(rt, business, statuses(business, status(WAMID, state, ts)))
    stored = messages(rt)[WAMID]
    assert stored.status == "read"
    assert int(stored.status_at.timestamp()) == t + 3
    assert moves(rt) == [("delivered", "accepted"), ("read", "delivered")]


def test_one_deliverys_statuses_apply_in_time_order(rt: Runtime, business: Business) -> None:
    """A value listing a message's statuses newest first applies them oldest first."""
    api_message(rt, business)
    t = ago(0.005)
    tally = apply(
        rt,
        business,
        statuses(
            business,
            status(WAMID, "read", t + 3),
            status(WAMID, "delivered", t + 2),
            status(WAMID, "sent", t + 1),
        ),
    )
    assert messages(rt)[WAMID].status == "read"
    assert moves(rt) == [("sent", "accepted"), ("delivered", "sent"), ("read", "delivered")]
    assert tally.counts == {"statuses_sent": 1, "statuses_delivered": 1, "statuses_read": 1}


def test_a_failed_status_stores_metas_error_and_tells_it(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A failed status keeps ``errors[0]``'s code and title on the message and in the feed."""
    api_message(rt, business)
    post(web, statuses(business, status(WAMID, "failed", ago(0.001), errors=[REENGAGEMENT_ERROR])))
    stored = messages(rt)[WAMID]
    assert (stored.status, stored.status_error_code, stored.status_error_title) == (
        "failed",
        131047,
        "Re-engagement message",
    )
    [body] = feed(rt, "message.status")
    assert body["error"] == {"code": 131047, "title": "Re-engagement message"}
    assert (body["wamid"], body["previous"]) == (WAMID, "accepted")
    assert last_summary(rt, "messages") == {"statuses_failed": 1}


def test_failed_is_final_against_sent_but_not_against_delivered(
    rt: Runtime, business: Business
) -> None:
    """A late sent does not undo a failure; Meta saying delivered does, and the error stays."""
    api_message(rt, business)
    t = ago(0.005)
    failed = status(WAMID, "failed", t + 2, errors=[REENGAGEMENT_ERROR])
    apply(rt, business, statuses(business, failed))
    apply(rt, business, statuses(business, status(WAMID, "sent", t + 1)))
    assert messages(rt)[WAMID].status == "failed"
    apply(rt, business, statuses(business, status(WAMID, "delivered", t + 3)))
    stored = messages(rt)[WAMID]
    assert (stored.status, stored.status_error_code) == ("delivered", 131047)
    assert moves(rt) == [("failed", "accepted"), ("delivered", "failed")]


def test_the_same_status_twice_is_applied_once(rt: Runtime, business: Business) -> None:
    """A redelivered status changes nothing the second time and is told once."""
    api_message(rt, business)
    payload = statuses(business, status(WAMID, "delivered", ago(0.001)))
    apply(rt, business, payload)
    again = apply(rt, business, payload)
    assert again.counts == {"statuses_not_newer": 1}
    assert moves(rt) == [("delivered", "accepted")]


def test_a_status_before_its_message_is_kept_and_applied_when_it_arrives(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A status for a message not stored yet waits in pending_statuses, and is applied (and
    told) when the message is stored."""
    read_at = ago(0.001)
    post(web, statuses(business, status("wamid.E1", "read", read_at)))
    assert last_summary(rt, "messages") == {"statuses_pending": 1}
    assert detail(rt, business)["counts"]["statuses_pending"] == 1
    post(web, echoes(business, ("wamid.E1", USER, ago(0.002), "See you at 5pm")))
    stored = messages(rt)["wamid.E1"]
    assert (stored.status, int(stored.status_at.timestamp())) == ("read", read_at)
    assert last_summary(rt, "smb_message_echoes")["pending_statuses_applied"] == 1
    assert detail(rt, business)["counts"]["statuses_pending"] == 0
    assert moves(rt) == [("read", None)]


def test_statuses_kept_past_their_horizon_are_forgotten(rt: Runtime, business: Business) -> None:
    """A status whose message never came is dropped after PENDING_STATUS_DAYS, not before."""
    apply(rt, business, statuses(business, status("wamid.NEVER", "sent", ago(0.001))))
    horizon = timedelta(days=statuses_module.PENDING_STATUS_DAYS)
    with rt.db.session() as session:
        assert statuses_module.forget_stale(session, now=utcnow() + horizon / 2) == 0
        assert statuses_module.forget_stale(session, now=utcnow() + horizon * 2) == 1
        assert session.scalars(select(PendingStatus)).all() == []


def test_unusable_statuses_are_rejected_with_their_reason(rt: Runtime, business: Business) -> None:
    """An unknown status, a status without id or timestamp, or not an object is rejected;
    its usable neighbour is applied."""
    api_message(rt, business)
    no_time: dict[str, Any] = status(WAMID, "sent", ago(0.001))
    del no_time["timestamp"]
    tally = apply(
        rt,
        business,
        statuses(
            business,
            status(WAMID, "deleted", ago(0.001)),
            {"status": "sent", "timestamp": str(ago(0.001))},
            no_time,
            "sent",
            status(WAMID, "delivered", ago(0.001)),
        ),
    )
    assert tally.rejected == [
        f"{WAMID}: unknown status 'deleted'",
        "status without a usable message id",
        f"{WAMID}: status timestamp missing or implausible",
        "status is not an object",
    ]
    assert messages(rt)[WAMID].status == "delivered"
