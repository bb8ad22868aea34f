"""Live traffic: users' messages to an onboarded number, stored as inbound ``live`` messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import select, update

from models import MediaState, Onboarding, OnboardingState, Peer
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import Business, chunk, edit, text, user_events
from tests.onboarding.ingest.bsuid_payloads import SHEENA, SHEENA_CONTACT, SHEENA_PARENT
from tests.onboarding.ingest.helpers import (
    ago,
    apply,
    detail,
    feed,
    last_summary,
    messages,
    peer_of,
    post,
)
from tests.onboarding.ingest.live_payloads import (
    IMAGE_ID,
    IMAGE_SHA256,
    USER,
    incoming,
    live_image,
    live_text,
)


def test_a_users_text_is_stored_as_an_inbound_live_message_of_its_peer(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Meta's example text message becomes an inbound ``live`` message in the user's thread,
    whose peer takes its name from ``contacts[]``."""
    sent = ago(0.001)
    post(web, incoming(business, live_text("wamid.L1", sent, "Does it come in another color?")))
    stored = messages(rt)["wamid.L1"]
    assert (stored.direction, stored.source, stored.thread, stored.type) == (
        "inbound",
        "live",
        USER,
        "text",
    )
    assert stored.text_body == "Does it come in another color?"
    assert int(stored.sent_at.timestamp()) == sent
    with rt.db.sessionmaker() as session:
        peer = session.scalars(select(Peer)).one()
    assert (peer.phone, peer.name, stored.peer_id) == (USER, "Sheena Nelson", peer.id)
    assert last_summary(rt, "messages") == {"live_messages": 1}
    assert detail(rt, business)["counts"]["messages_live"] == 1


def test_a_users_image_awaits_its_download_with_metas_digest(
    rt: Runtime, business: Business
) -> None:
    """An image keeps its caption, media id, mime type and sha256, and is handed to the
    media download as ``awaiting_media``."""
    tally = apply(rt, business, incoming(business, live_image("wamid.IMG", ago(0.001), "Mine")))
    stored = messages(rt)["wamid.IMG"]
    assert stored.media_state == MediaState.AWAITING
    assert (stored.media_id, stored.media_mime, stored.media_sha256) == (
        IMAGE_ID,
        "image/jpeg",
        IMAGE_SHA256,
    )
    assert (stored.text_body, stored.source, stored.direction) == ("Mine", "live", "inbound")
    assert tally.media_wamids == ["wamid.IMG"]


def test_the_same_delivery_twice_stores_once_and_tells_the_feed_once(
    rt: Runtime, business: Business
) -> None:
    """A redelivered message merges into its row: one message, one ``messages.stored``."""
    payload = incoming(business, live_text("wamid.L1", ago(0.001), "hello"))
    apply(rt, business, payload)
    again = apply(rt, business, payload)
    assert list(messages(rt)) == ["wamid.L1"]
    assert again.counts == {"live_messages_repeated": 1}
    assert len(feed(rt, "messages.stored")) == 1


def test_stored_live_messages_are_told_in_the_feed(rt: Runtime, business: Business) -> None:
    """``messages.stored`` says source live, the count and each message's thread, peer,
    direction, time, type, text and media."""
    sent = ago(0.001)
    apply(
        rt,
        business,
        incoming(business, live_text("wamid.T", sent, "hi"), live_image("wamid.I", sent, "pic")),
    )
    [body] = feed(rt, "messages.stored")
    assert (body["source"], body["count"]) == ("live", 2)
    told = {m["wamid"]: m for m in body["messages"]}
    peer_id = messages(rt)["wamid.T"].peer_id
    assert told["wamid.T"]["thread"] == USER
    assert told["wamid.T"]["peer_id"] == peer_id is not None
    assert (told["wamid.T"]["direction"], told["wamid.T"]["type"]) == ("inbound", "text")
    assert (told["wamid.T"]["text"], told["wamid.T"]["media"]) == ("hi", None)
    assert told["wamid.T"]["sent_at"].startswith(
        messages(rt)["wamid.T"].sent_at.strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert told["wamid.I"]["media"] == {
        "state": "awaiting_media",
        "mime": "image/jpeg",
        "sha256": IMAGE_SHA256,
    }


def test_a_user_known_only_by_bsuid_is_stored_under_that_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A username adopter's message (``from`` omitted, ``from_user_id``) goes to the peer of
    its BSUID, named by Meta's ``contacts[]`` entry."""
    msg = live_text("wamid.B", ago(0.001), "hey", phone=None)
    msg["from_user_id"] = SHEENA
    post(web, incoming(business, msg, contacts=[SHEENA_CONTACT]))
    stored = messages(rt)["wamid.B"]
    assert (stored.thread, stored.direction, stored.source) == (SHEENA, "inbound", "live")
    assert peer_of(rt, "wamid.B") == (None, SHEENA)
    with rt.db.sessionmaker() as session:
        peer = session.scalars(select(Peer)).one()
    assert (peer.parent_user_id, peer.username) == (SHEENA_PARENT, "realsheenanelson")


def test_a_live_reply_joins_the_history_thread_of_its_user(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A live message from a user with history is in the same thread and peer."""
    post(web, chunk(business, 0, 1, 10, {USER: [text("wamid.H", USER, ago(1), "earlier")]}))
    post(web, incoming(business, live_text("wamid.L", ago(0.001), "now")))
    assert messages(rt)["wamid.L"].peer_id == messages(rt)["wamid.H"].peer_id is not None


def test_a_message_for_another_number_of_the_waba_is_not_stored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A message to a number of the same WABA that coexist did not onboard is counted as not
    stored, with the reason."""
    post(web, incoming(business, live_text("wamid.X", ago(0.001), "hi"), phone_number_id="999"))
    assert messages(rt) == {}
    summary = last_summary(rt, "messages")
    assert summary["messages_not_stored"] == 1
    assert "number 999 is not onboarding" in summary["notes"][0]


@pytest.mark.parametrize("state", [OnboardingState.DISCONNECTED, OnboardingState.FAILED])
def test_a_message_for_a_number_no_longer_connected_is_not_stored(
    rt: Runtime, business: Business, state: OnboardingState
) -> None:
    """An onboarding that is not connected stores no live messages."""
    with rt.db.session() as session:
        session.execute(
            update(Onboarding)
            .where(Onboarding.id == business.onboarding_id)
            .values(state=state.value)
        )
    tally = apply(rt, business, incoming(business, live_text("wamid.X", ago(0.001), "hi")))
    assert messages(rt) == {}
    assert tally.counts == {"messages_not_stored": 1}
    assert tally.notes == [
        f"onboarding {business.onboarding_id} is {state.value}: "
        "its number's live messages are not stored"
    ]


def test_a_message_without_an_id_is_rejected_and_its_neighbours_stored(
    rt: Runtime, business: Business
) -> None:
    """An unusable message is rejected with its reason; the others in the value are stored."""
    broken = live_text("", ago(0.001), "lost")
    tally = apply(
        rt, business, incoming(business, broken, live_text("wamid.OK", ago(0.001), "kept"))
    )
    assert list(messages(rt)) == ["wamid.OK"]
    assert tally.rejected == ["message without a usable id"]


def test_a_users_edit_that_comes_before_its_live_message_is_applied_when_it_arrives(
    rt: Runtime, business: Business
) -> None:
    """Days after signup, a user's edit of a live message not stored yet is kept (the message
    may still come), and applied when it does."""
    with rt.db.sessionmaker() as session:
        signup = session.get_one(Onboarding, business.onboarding_id).signup_completed_at
    later = signup + timedelta(days=5)
    sent, edited = int(later.timestamp()) - 60, int(later.timestamp())
    with freeze_time(later):
        early = apply(
            rt, business, user_events(business, edit("wamid.ED", USER, edited, "wamid.L", "new"))
        )
        apply(rt, business, incoming(business, live_text("wamid.L", sent, "old")))
    assert early.counts["edits_pending"] == 1
    stored = messages(rt)["wamid.L"]
    assert stored.text_body == "new"
    assert stored.edited_at is not None
