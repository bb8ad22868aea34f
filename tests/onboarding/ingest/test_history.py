"""History chunks: the window, group chats, duplicates, gaps, pages, declines, the sync row."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import (
    HistoryChunk,
    Onboarding,
    OnboardingState,
    SyncState,
    SyncType,
)
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    declined_value,
    placeholder,
    text,
)
from tests.onboarding.ingest.helpers import OTHER, USER, ago, detail, dropped, messages, post


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


def test_declined_history_with_or_without_envelope(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Error 2593109 declines the history sync at once, even as a bare value."""
    post(web, body_of(declined_value(business)))
    shown = detail(rt, business)
    assert shown["sync"]["history"]["state"] == SyncState.DECLINED
    assert shown["state"] == OnboardingState.HISTORY_DECLINED
    assert {a["kind"] for a in shown["alerts"]} >= {"history_declined"}


def test_history_webhook_confirms_an_unknown_sync(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """History arriving for a sync whose answer was lost proves Meta accepted it."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = SyncState.UNKNOWN.value
    post(web, chunk(business, 1, 1, 10, {USER: [text("wamid.c", USER, ago(2), "c")]}))
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.REQUESTED


def test_out_of_window_messages_are_recorded_as_dropped(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A chunk's message older than 180 days is recorded as dropped out of window."""
    post(web, chunk(business, 2, 1, 50, {USER: [text("wamid.old", USER, ago(185), "too old")]}))
    assert dropped(rt) == {"wamid.old": "out_of_window"}


def test_a_placeholder_older_than_the_media_cutoff_says_why_it_is_skipped(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A placeholder older than 14 days is skipped_too_old with the reason in media_error."""
    post(web, chunk(business, 1, 1, 50, {USER: [placeholder("wamid.P", USER, ago(30))]}))
    stored = messages(rt)["wamid.P"]
    assert (stored.media_state, stored.media_error) == ("skipped_too_old", TOO_OLD_FOR_MEDIA)
