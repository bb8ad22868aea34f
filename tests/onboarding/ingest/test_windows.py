"""The history window and the media cut-off applied to late media, in either arrival order."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import Onboarding
from onboarding.ingest import history
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA, Context
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import Business, chunk, media_followup, placeholder
from tests.onboarding.ingest.helpers import (
    USER,
    ago,
    detail,
    dropped,
    last_summary,
    messages,
    post,
)

#: The wamid and media id of Meta's documented media follow-up
#: (docs/meta.md#44-history-media-placeholders-and-late-media).
WAMID = "wamid.HBgL...A2"
MEDIA_ID = "24230790383178626"


def in_order(web: TestClient, late_media_first: bool, *payloads: dict[str, Any]) -> None:
    """Post the late media (first payload) before or after the chunk (second)."""
    followup, history_chunk = payloads
    for payload in (followup, history_chunk) if late_media_first else (history_chunk, followup):
        post(web, payload)


def test_late_media_older_than_the_history_window_is_dropped_and_recorded(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Late media whose own timestamp is older than 180 days is not stored but recorded."""
    post(web, media_followup(business, WAMID, business.number, ago(185), media_id=MEDIA_ID))
    assert messages(rt) == {}
    assert dropped(rt) == {WAMID: "out_of_window"}
    assert last_summary(rt, "history")["followups_out_of_window"] == 1


@pytest.mark.parametrize("late_media_first", [True, False], ids=["media-first", "chunk-first"])
def test_out_of_window_late_media_and_its_chunk_leave_no_message_in_either_order(
    web: TestClient, rt: Runtime, business: Business, late_media_first: bool
) -> None:
    """A message older than the window and its late media end with no message, whatever came
    first, and are counted once as dropped."""
    ts = ago(185)
    in_order(
        web,
        late_media_first,
        media_followup(business, WAMID, business.number, ts, media_id=MEDIA_ID),
        chunk(business, 2, 1, 50, {USER: [placeholder(WAMID, business.number, ts)]}),
    )
    assert messages(rt) == {}
    assert dropped(rt) == {WAMID: "out_of_window"}
    assert detail(rt, business)["counts"]["dropped_out_of_window"] == 1


def test_late_media_older_than_the_media_cutoff_is_stored_as_skipped_with_its_reason(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Late media older than 14 days is stored as skipped_too_old, saying why."""
    post(web, media_followup(business, WAMID, business.number, ago(30), media_id=MEDIA_ID))
    stored = messages(rt)[WAMID]
    assert (stored.type, stored.media_state) == ("image", "skipped_too_old")
    assert stored.media_error == TOO_OLD_FOR_MEDIA
    assert last_summary(rt, "history")["media_skipped_too_old"] == 1


def test_late_media_older_than_the_media_cutoff_is_never_downloaded(
    rt: Runtime, business: Business
) -> None:
    """Late media older than 14 days is left out of the downloads the change asks for."""
    payload = media_followup(business, WAMID, business.number, ago(30), media_id=MEDIA_ID)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, rt.settings)
        value = payload["entry"][0]["changes"][0]["value"]
        tally = history.ingest_history(session, ctx, value, settings=rt.settings)
    assert tally.media_wamids == []
    assert messages(rt)[WAMID].media_attempts == 0


@pytest.mark.parametrize("late_media_first", [True, False], ids=["media-first", "chunk-first"])
def test_late_media_older_than_the_media_cutoff_ends_the_same_in_either_order(
    web: TestClient, rt: Runtime, business: Business, late_media_first: bool
) -> None:
    """Placeholder and late media older than 14 days merge into one skipped message, with its
    media id and reason, whatever came first; nothing is downloaded."""
    ts = ago(30)
    in_order(
        web,
        late_media_first,
        media_followup(business, WAMID, business.number, ts, media_id=MEDIA_ID),
        chunk(business, 1, 1, 50, {USER: [placeholder(WAMID, business.number, ts)]}),
    )
    stored = messages(rt)[WAMID]
    assert (stored.type, stored.thread, stored.media_id) == ("image", USER, MEDIA_ID)
    assert (stored.media_state, stored.media_error) == ("skipped_too_old", TOO_OLD_FOR_MEDIA)
    assert (stored.media_attempts, stored.media_path) == (0, None)


def test_late_media_within_the_media_cutoff_is_still_downloaded(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Late media newer than 14 days is fetched as before (the sandbox knows no such media, so
    the attempt is what shows)."""
    post(web, media_followup(business, WAMID, business.number, ago(2), media_id=MEDIA_ID))
    stored = messages(rt)[WAMID]
    assert stored.media_state != "skipped_too_old"
    assert stored.media_attempts >= 1
