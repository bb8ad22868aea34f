"""Ingestion: history chunks, gaps, media states, contacts, echoes, edits, early arrivals."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Contact,
    HistoryChunk,
    InboxDelivery,
    InboxStatus,
    MediaState,
    Message,
    Onboarding,
    OnboardingState,
    SyncState,
    SyncType,
    utcnow,
)
from onboarding.ingest import dispatch as ingest
from onboarding.ingest import history
from onboarding.ingest import inbox as webhooks
from onboarding.runtime import Runtime
from onboarding.views import onboarding_detail
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    contacts,
    declined_value,
    echoes,
    envelope,
    media_followup,
    placeholder,
    signed,
    text,
)

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


def test_out_of_window_and_group_messages_are_dropped_and_counted(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Messages older than 180 days and non-1:1 threads are not stored, but counted."""
    post(
        web,
        chunk(
            business,
            2,
            1,
            50,
            {
                USER: [
                    text("wamid.old", USER, ago(185), "too old"),
                    text("wamid.ok", USER, ago(170), "ok"),
                ],
                "120363025246125486@g.us": [
                    text("wamid.g1", USER, ago(10), "group"),
                    text("wamid.g2", USER, ago(10), "group"),
                ],
            },
        ),
    )
    assert set(messages(rt)) == {"wamid.ok"}
    counts = detail(rt, business)["counts"]
    assert counts["dropped_out_of_window"] == 1
    assert counts["dropped_group"] == 2


def test_duplicated_and_shuffled_chunks_store_each_message_once(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Chunks in any order, some twice, give exact counts and complete at progress 100."""
    deliveries = [
        chunk(business, 0, 1, 100, {USER: [text("wamid.p0", USER, ago(0.5), "today")]}),
        chunk(business, 1, 2, 60, {OTHER: [text("wamid.p1b", OTHER, ago(40), "b")]}),
        chunk(business, 1, 1, 30, {USER: [text("wamid.p1a", USER, ago(20), "a")]}),
    ]
    for payload in [deliveries[0], deliveries[2], deliveries[0], deliveries[1], deliveries[2]]:
        post(web, payload)
    shown = detail(rt, business)
    assert shown["counts"]["messages"] == 3
    assert shown["counts"]["threads"] == 2
    assert shown["sync"]["history"]["state"] == SyncState.COMPLETED
    assert shown["sync"]["history"]["progress"] == 100
    assert shown["sync"]["history"]["phases"] == {
        "0": {"received": [1], "missing": []},
        "1": {"received": [1, 2], "missing": []},
    }
    assert shown["state"] == OnboardingState.SYNCED


def test_gaps_are_listed_and_filled_when_late_chunks_arrive(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Progress 100 with a missing chunk_order is completed_with_gaps until it arrives."""
    post(web, chunk(business, 1, 1, 30, {USER: [text("wamid.1", USER, ago(20), "1")]}))
    post(web, chunk(business, 1, 3, 100, {USER: [text("wamid.3", USER, ago(60), "3")]}))
    shown = detail(rt, business)
    assert shown["sync"]["history"]["state"] == SyncState.COMPLETED_WITH_GAPS
    assert shown["sync"]["history"]["phases"]["1"]["missing"] == [2]
    post(web, chunk(business, 1, 2, 60, {USER: [text("wamid.2", USER, ago(40), "2")]}))
    shown = detail(rt, business)
    assert shown["sync"]["history"]["state"] == SyncState.COMPLETED
    assert shown["sync"]["history"]["phases"]["1"]["missing"] == []
    assert shown["timeline"][-1]["cause"].startswith("late history chunks filled every gap")


def test_large_chunks_are_written_in_pages(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A chunk larger than the page size is stored completely, page by page."""
    rt.settings.ingest_page_size = 10
    msgs = [text(f"wamid.big{i}", USER, ago(5) + i, f"m{i}") for i in range(35)]
    post(web, chunk(business, 1, 1, 100, {USER: msgs}))
    assert len(messages(rt)) == 35
    with rt.db.sessionmaker() as session:
        [ledger] = session.scalars(select(HistoryChunk)).all()
        assert ledger.messages == 35


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


def test_media_followup_before_its_placeholder_merges_into_one_message(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """The follow-up may come first; the placeholder then fills the thread, not the type."""
    ts = ago(2)
    post(web, media_followup(business, "wamid.M", USER, ts, media_id="24230790383178626"))
    early = messages(rt)["wamid.M"]
    assert early.type == "image"
    post(web, chunk(business, 0, 1, 10, {USER: [placeholder("wamid.M", USER, ts)]}))
    merged = messages(rt)["wamid.M"]
    assert merged.type == "image"
    assert merged.media_id == "24230790383178626"
    assert merged.thread == USER
    assert merged.text_body == "Invoice"


def test_placeholder_then_followup_keeps_the_media_id(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """The usual order: placeholder, then the follow-up fills type, id, mime and sha256."""
    ts = ago(2)
    post(web, chunk(business, 0, 1, 10, {USER: [placeholder("wamid.N", USER, ts)]}))
    post(web, media_followup(business, "wamid.N", USER, ts, media_id="555", sha256="ab" * 32))
    merged = messages(rt)["wamid.N"]
    assert (merged.type, merged.media_id, merged.media_mime) == ("image", "555", "image/jpeg")
    assert merged.media_sha256 == "ab" * 32


def test_contacts_last_write_wins_under_reordering(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An older change arriving after a newer one does not overwrite it; removal is kept."""
    post(web, contacts(business, ("add", "16505551111", ago(2), "Pablo Morales New")))
    post(web, contacts(business, ("add", "16505551111", ago(3), "Pablo Old")))
    post(
        web,
        contacts(
            business,
            ("add", "12125557890", ago(4), "Ana"),
            ("remove", "12125557890", ago(1), None),
        ),
    )
    post(web, contacts(business, ("add", "12125557890", ago(1.5), "Ana Late")))
    with rt.db.sessionmaker() as session:
        rows = {c.phone: c for c in session.scalars(select(Contact))}
    assert rows["16505551111"].full_name == "Pablo Morales New"
    assert rows["12125557890"].removed_at is not None
    # Names and presence are separate registers: the later name stays, the removal too.
    assert rows["12125557890"].full_name == "Ana Late"
    counts = detail(rt, business)["counts"]
    assert (counts["contacts"], counts["contacts_removed"]) == (1, 1)


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


def test_declined_history_with_or_without_envelope(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Error 2593109 declines the history sync at once, even as a bare value."""
    post(web, body_of(declined_value(business)))
    shown = detail(rt, business)
    assert shown["sync"]["history"]["state"] == SyncState.DECLINED
    assert shown["state"] == OnboardingState.HISTORY_DECLINED
    assert {a["kind"] for a in shown["alerts"]} >= {"history_declined"}


def test_unknown_fields_are_kept_and_ignored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A field coexist does not handle is stored, processed and marked ignored."""
    post(web, envelope(business, "message_template_status_update", {"event": "APPROVED"}))
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(InboxDelivery)).all()
    assert row.status == InboxStatus.PROCESSED
    assert row.summary == {"message_template_status_update": {"ignored": 1}}


def test_early_arrivals_wait_for_their_onboarding(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A delivery for an unknown number waits, then is processed once its onboarding exists."""
    stranger = Business(0, "999888777666555", "111222333444555", "15550001111")
    post(web, chunk(stranger, 1, 1, 10, {USER: [text("wamid.W", USER, ago(2), "early")]}))
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(InboxDelivery)).all()
        assert row.status == InboxStatus.WAITING
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.phone_number_id = stranger.phone_number_id
    with rt.db.session() as session:
        due = ingest.stale_pending(session, settings=rt.settings)
    assert due == [row.id]
    with rt.db.session() as session:
        ingest.process_delivery(session, row.id, settings=rt.settings)
    assert "wamid.W" in messages(rt)


def test_stale_pending_rows_are_dispatched_once_per_period(rt: Runtime, business: Business) -> None:
    """A row whose processing message was lost is dispatched again after the threshold, once:
    a run right after finds it dispatched already, a run a period later dispatches it again."""
    with rt.db.session() as session:
        intake = webhooks.receive(
            session,
            body_of(chunk(business, 1, 1, 10, {USER: [text("wamid.L", USER, ago(2), "lost")]})),
        )
    period = timedelta(seconds=rt.settings.inbox_redispatch_after_seconds + 1)
    with rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == []  # too recent
    with freeze_time(utcnow() + period), rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == [intake.delivery_id]
        assert ingest.stale_pending(session, settings=rt.settings) == []
    with freeze_time(utcnow() + 2 * period + timedelta(seconds=1)), rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == [intake.delivery_id]


def test_waiting_deliveries_are_orphaned_after_seven_days(rt: Runtime, web: TestClient) -> None:
    """A delivery nobody claims for 7 days becomes orphaned."""
    stranger = Business(0, "999888777666555", "111222333444555", "15550001111")
    post(web, chunk(stranger, 1, 1, 10, {USER: [text("wamid.W", USER, ago(2), "early")]}))
    with freeze_time(utcnow() + timedelta(days=8)), rt.db.session() as session:
        ingest.stale_pending(session, settings=rt.settings)
    with rt.db.sessionmaker() as session:
        assert session.scalars(select(InboxDelivery.status)).one() == InboxStatus.ORPHANED


def test_history_without_webhooks_is_stalled_then_revived(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A requested history sync with no webhook in time is stalled; a late chunk revives it."""
    with freeze_time(utcnow() + timedelta(hours=2)), rt.db.session() as session:
        assert history.watch_stalled(session, settings=rt.settings) == 1
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.STALLED
    post(web, chunk(business, 1, 1, 10, {USER: [text("wamid.late", USER, ago(2), "late")]}))
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.REQUESTED


def test_history_webhook_confirms_an_unknown_sync(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """History arriving for a sync whose answer was lost proves Meta accepted it."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = SyncState.UNKNOWN.value
    post(web, chunk(business, 1, 1, 10, {USER: [text("wamid.c", USER, ago(2), "c")]}))
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.REQUESTED


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


def test_media_followups_of_group_messages_are_not_kept_in_either_order(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A group chat's media follow-up is dropped whether it comes before or after its chunk."""
    group = "120363025246125486@g.us"
    ts = ago(2)
    post(web, media_followup(business, "wamid.G1", USER, ts, media_id="111"))  # first
    post(
        web,
        chunk(
            business,
            0,
            1,
            50,
            {group: [placeholder("wamid.G1", USER, ts), placeholder("wamid.G2", USER, ts)]},
        ),
    )
    post(web, media_followup(business, "wamid.G2", business.number, ts, media_id="222"))  # after
    assert messages(rt) == {}
    assert detail(rt, business)["counts"]["dropped_group"] == 2


def test_a_group_chunk_dropped_while_its_media_followup_is_stored_leaves_no_message(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group chat's chunk processed by another worker after its media follow-up looked for
    dropped messages, but before the follow-up committed, still leaves no message."""
    group = "120363025246125486@g.us"
    ts = ago(2)
    with rt.db.session() as session:
        group_chunk = webhooks.receive(
            session,
            body_of(chunk(business, 0, 1, 50, {group: [placeholder("wamid.G1", USER, ts)]})),
        )
    followup = media_followup(business, "wamid.G1", USER, ts, media_id="111")
    look = history.dropped_wamids

    def chunk_processed_meanwhile(
        session: Session, onboarding_id: int, wamids: list[str]
    ) -> set[str]:
        found = look(session, onboarding_id, wamids)
        monkeypatch.setattr(history, "dropped_wamids", look)  # only the first look races
        with rt.db.session() as other:
            ingest.process_delivery(other, group_chunk.delivery_id, settings=rt.settings)
        return found

    monkeypatch.setattr(history, "dropped_wamids", chunk_processed_meanwhile)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = history.Context.of(onboarding, business.number, rt.settings)
        value = followup["entry"][0]["changes"][0]["value"]
        tally = history.ingest_history(session, ctx, value, settings=rt.settings)

    assert messages(rt) == {}
    assert tally.media_wamids == []
    assert tally.counts["followups_of_dropped_messages"] == 1
    assert detail(rt, business)["counts"]["dropped_group"] == 1


def test_a_delivery_that_keeps_failing_is_quarantined_after_bounded_attempts(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error is recorded on the row each time; after the last attempt the row
    is quarantined for an operator instead of being dispatched forever."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(ingest.HANDLERS, "history", broken)
    with rt.db.session() as session:
        intake = webhooks.receive(
            session,
            body_of(chunk(business, 1, 1, 10, {USER: [text("wamid.X", USER, ago(1), "x")]})),
        )
    for _ in range(ingest.MAX_ATTEMPTS):
        with rt.db.session() as session, pytest.raises(RuntimeError):
            ingest.process_delivery(session, intake.delivery_id, settings=rt.settings)
    with rt.db.session() as session:
        outcome = ingest.process_delivery(session, intake.delivery_id, settings=rt.settings)
    assert outcome.status == InboxStatus.QUARANTINED
    with rt.db.sessionmaker() as session:
        row = session.get_one(InboxDelivery, intake.delivery_id)
    assert row.last_error is not None
    assert "handler bug" in row.last_error
