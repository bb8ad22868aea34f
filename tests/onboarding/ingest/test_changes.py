"""Edits and revokes, the business's (as echoes) and users' (in ``messages``), in any order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy.orm import Session

from models import Onboarding, OnboardingState
from onboarding.ingest import changes
from onboarding.ingest.messages import apply_message_events
from onboarding.ingest.rows import Context
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    chunk,
    echo_items,
    echoes,
    edit,
    media_followup,
    revoke,
    text,
    user_events,
)
from tests.onboarding.ingest.helpers import (
    USER,
    ago,
    detail,
    kept_changes,
    last_summary,
    messages,
    post,
)

#: The wamid of Meta's documented echo (docs/meta.md#47-smb_message_echoes).
ORIGINAL = "wamid.HBgL...E9"


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def test_a_business_edit_echo_changes_its_message_and_is_not_stored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An echo of type edit replaces its original's text, edited at the edit's timestamp."""
    sent, edited = ago(0.02), ago(0.01)
    post(web, echoes(business, (ORIGINAL, USER, sent, "See you at 5pm")))
    post(
        web, echo_items(business, edit("wamid.ED", business.number, edited, ORIGINAL, "6pm", USER))
    )
    stored = messages(rt)
    assert set(stored) == {ORIGINAL}
    assert stored[ORIGINAL].text_body == "6pm"
    assert stored[ORIGINAL].edited_at == at(edited)
    assert last_summary(rt, "smb_message_echoes")["edits"] == 1


def test_a_business_revoke_echo_removes_its_message_content_and_is_not_stored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An echo of type revoke removes its original's text, revoked at the revoke's timestamp."""
    sent, revoked = ago(0.02), ago(0.01)
    post(web, echoes(business, (ORIGINAL, USER, sent, "See you at 5pm")))
    post(web, echo_items(business, revoke("wamid.RV", business.number, revoked, ORIGINAL, USER)))
    stored = messages(rt)
    assert set(stored) == {ORIGINAL}
    assert stored[ORIGINAL].text_body is None
    assert stored[ORIGINAL].revoked_at == at(revoked)


def test_a_business_edit_moves_the_last_app_activity(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Editing in the app is app activity: the edit's timestamp becomes the latest."""
    sent, edited = ago(0.02), ago(0.01)
    post(web, echoes(business, (ORIGINAL, USER, sent, "See you at 5pm")))
    post(
        web, echo_items(business, edit("wamid.ED", business.number, edited, ORIGINAL, "6pm", USER))
    )
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        assert onboarding.last_app_activity_at == at(edited)


@pytest.mark.parametrize("original_first", [True, False], ids=["original-first", "edit-first"])
def test_a_business_edit_ends_the_same_before_or_after_its_echo(
    web: TestClient, rt: Runtime, business: Business, original_first: bool
) -> None:
    """An edit echo that comes before its original is kept, then applied when it comes."""
    sent, edited = ago(0.02), ago(0.01)
    original = echoes(business, (ORIGINAL, USER, sent, "See you at 5pm"))
    change = echo_items(business, edit("wamid.ED", business.number, edited, ORIGINAL, "6pm", USER))
    for payload in (original, change) if original_first else (change, original):
        post(web, payload)
    stored = messages(rt)[ORIGINAL]
    assert (stored.text_body, stored.edited_at) == ("6pm", at(edited))
    assert kept_changes(rt) == {}


def test_an_edit_before_its_message_is_kept_and_counted_as_pending(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit whose original is not stored yet waits, counted as pending."""
    edited = ago(0.01)
    post(
        web, echo_items(business, edit("wamid.ED", business.number, edited, ORIGINAL, "6pm", USER))
    )
    assert messages(rt) == {}
    kept = kept_changes(rt)["wamid.ED"]
    assert (kept.original_wamid, kept.kind, kept.text_body) == (ORIGINAL, "edit", "6pm")
    assert kept.changed_at == at(edited)
    assert last_summary(rt, "smb_message_echoes")["edits_pending"] == 1
    assert detail(rt, business)["counts"]["edits_pending"] == 1


def test_a_user_revoke_before_its_history_message_is_applied_by_the_chunk(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A user's revoke that comes before the chunk holding its message is applied by it."""
    sent, revoked = ago(1), ago(0.5)
    post(web, user_events(business, revoke("wamid.RV", USER, revoked, "wamid.U1")))
    assert detail(rt, business)["counts"]["revokes_pending"] == 1
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "oops")]}))
    stored = messages(rt)["wamid.U1"]
    assert (stored.text_body, stored.revoked_at) == (None, at(revoked))
    assert kept_changes(rt) == {}
    assert last_summary(rt, "history")["pending_changes_applied"] == 1


def test_a_user_edit_before_its_late_media_is_applied_to_the_caption(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit of a media message that comes before its late media changes the caption."""
    sent, edited = ago(2), ago(1.9)
    post(web, user_events(business, edit("wamid.EM", USER, edited, "wamid.M", "Receipt")))
    post(web, media_followup(business, "wamid.M", USER, sent, media_id="24230790383178626"))
    stored = messages(rt)["wamid.M"]
    assert (stored.text_body, stored.edited_at) == ("Receipt", at(edited))
    assert kept_changes(rt) == {}


def test_user_edits_are_dated_by_their_webhook_timestamp(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A user's edit sets edited_at to the edit's timestamp, not to when it was processed."""
    sent, edited = ago(1), ago(0.9)
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "typo")]}))
    post(web, user_events(business, edit("wamid.ED", USER, edited, "wamid.U1", "fixed")))
    stored = messages(rt)["wamid.U1"]
    assert (stored.text_body, stored.edited_at) == ("fixed", at(edited))


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest-first", "oldest-first"])
def test_the_newest_edit_wins_whatever_order_the_edits_arrive_in(
    web: TestClient, rt: Runtime, business: Business, newest_first: bool
) -> None:
    """Of several edits of one message, the one with the newest timestamp gives the text."""
    sent = ago(1)
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "v0")]}))
    first = user_events(business, edit("wamid.E1", USER, sent + 60, "wamid.U1", "v1"))
    second = user_events(business, edit("wamid.E2", USER, sent + 120, "wamid.U1", "v2"))
    for payload in (second, first) if newest_first else (first, second):
        post(web, payload)
    stored = messages(rt)["wamid.U1"]
    assert (stored.text_body, stored.edited_at) == ("v2", at(sent + 120))


@pytest.mark.parametrize("revoke_first", [True, False], ids=["revoke-first", "edit-first"])
def test_a_revoke_is_final_whatever_order_it_and_an_edit_arrive_in(
    web: TestClient, rt: Runtime, business: Business, revoke_first: bool
) -> None:
    """A revoked message keeps no text: an edit arriving after the revoke brings none back, and
    the message ends the same in either order."""
    sent = ago(1)
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "v0")]}))
    edited = user_events(business, edit("wamid.E1", USER, sent + 60, "wamid.U1", "v1"))
    revoked = user_events(business, revoke("wamid.R1", USER, sent + 30, "wamid.U1"))
    for payload in (revoked, edited) if revoke_first else (edited, revoked):
        post(web, payload)
    stored = messages(rt)["wamid.U1"]
    assert stored.text_body is None
    assert stored.revoked_at == at(sent + 30)
    assert stored.edited_at == at(sent + 60)


def test_a_redelivered_chunk_does_not_bring_back_a_revoked_text(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A revoked message seen again in another chunk keeps its content removed."""
    sent = ago(1)
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "secret")]}))
    post(web, user_events(business, revoke("wamid.R1", USER, sent + 30, "wamid.U1")))
    post(web, chunk(business, 0, 2, 20, {USER: [text("wamid.U1", USER, sent, "secret")]}))
    assert messages(rt)["wamid.U1"].text_body is None


def test_a_change_without_its_original_id_is_rejected(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit that names no original message is rejected with its reason, nothing kept."""
    item = edit("wamid.ED", USER, ago(0.01), ORIGINAL, "6pm")
    del item["edit"]["original_message_id"]
    post(web, user_events(business, item))
    summary = last_summary(rt, "messages")
    assert summary["rejected"] == 1
    assert "original_message_id" in summary["rejected_reasons"][0]
    assert kept_changes(rt) == {}


def test_an_edit_kept_while_another_worker_stores_its_original_is_still_applied(
    rt: Runtime, business: Business, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit that looked for its original just before another worker stored it (and that
    worker looked for kept changes before the edit was kept) is applied all the same."""
    sent, edited = ago(1), ago(0.9)
    look = changes._stored

    def stored_meanwhile(session: Session, onboarding_id: int, wamids: Iterable[str]) -> set[str]:
        found = look(session, onboarding_id, wamids)
        monkeypatch.setattr(changes, "_stored", look)  # only the first look races
        post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "typo")]}))
        return found

    monkeypatch.setattr(changes, "_stored", stored_meanwhile)
    event = user_events(business, edit("wamid.ED", USER, edited, "wamid.U1", "fixed"))
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, rt.settings)
        apply_message_events(session, ctx, event["entry"][0]["changes"][0]["value"])
    stored = messages(rt)["wamid.U1"]
    assert (stored.text_body, stored.edited_at) == ("fixed", at(edited))
    assert kept_changes(rt) == {}


def test_a_user_change_too_late_for_any_history_message_is_counted_not_kept(
    rt: Runtime, business: Business
) -> None:
    """For a number whose live messages coexist does not store (its onboarding disconnected),
    a user's revoke of an unknown message dated past the 2-day revoke window after signup
    cannot concern a history message still to come: counted, not kept."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        signup = onboarding.signup_completed_at
        onboarding.state = OnboardingState.DISCONNECTED.value
    later = signup + timedelta(days=3)
    event = user_events(business, revoke("wamid.RV", USER, int(later.timestamp()), "wamid.LIVE"))
    with freeze_time(later), rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, rt.settings)
        tally = apply_message_events(session, ctx, event["entry"][0]["changes"][0]["value"])
    assert tally.counts["revokes_for_unknown_messages"] == 1
    assert kept_changes(rt) == {}
