"""Late media: the later webhook with a media id, in either order, and group chats dropped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from models import (
    Onboarding,
)
from onboarding.ingest import dispatch as ingest
from onboarding.ingest import history, late_media
from onboarding.ingest import inbox as webhooks
from onboarding.ingest.rows import Context
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    envelope,
    media_followup,
    placeholder,
)
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    SHEENA,
    SHEENA_CONTACT,
    SHEENA_PARENT,
    thread,
)
from tests.onboarding.ingest.bsuid_payloads import history as history_chunk
from tests.onboarding.ingest.helpers import (
    USER,
    ago,
    detail,
    dropped,
    messages,
    peer_of,
    peer_rows,
    post,
)


def test_late_media_before_its_placeholder_merges_into_one_message(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """The media update may come first; the placeholder then fills the thread, not the type."""
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


def test_placeholder_then_late_media_keeps_the_media_id(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """The usual order: placeholder, then the media update fills type, id, mime and sha256."""
    ts = ago(2)
    post(web, chunk(business, 0, 1, 10, {USER: [placeholder("wamid.N", USER, ts)]}))
    post(web, media_followup(business, "wamid.N", USER, ts, media_id="555", sha256="ab" * 32))
    merged = messages(rt)["wamid.N"]
    assert (merged.type, merged.media_id, merged.media_mime) == ("image", "555", "image/jpeg")
    assert merged.media_sha256 == "ab" * 32


def test_late_media_of_group_messages_is_not_kept_in_either_order(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A group chat's media update is dropped whether it comes before or after its chunk."""
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


def test_a_group_chunk_dropped_while_its_late_media_is_stored_leaves_no_message(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group chat's chunk processed by another worker after its media update looked for
    dropped messages, but before the media update committed, still leaves no message."""
    group = "120363025246125486@g.us"
    ts = ago(2)
    with rt.db.session() as session:
        group_chunk = webhooks.receive(
            session,
            body_of(chunk(business, 0, 1, 50, {group: [placeholder("wamid.G1", USER, ts)]})),
        )
    update = media_followup(business, "wamid.G1", USER, ts, media_id="111")
    look = late_media.dropped_wamids

    def chunk_processed_meanwhile(
        session: Session, onboarding_id: int, wamids: list[str]
    ) -> set[str]:
        found = look(session, onboarding_id, wamids)
        monkeypatch.setattr(late_media, "dropped_wamids", look)  # only the first look races
        with rt.db.session() as other:
            ingest.process_delivery(other, group_chunk.delivery_id, settings=rt.settings)
        return found

    monkeypatch.setattr(late_media, "dropped_wamids", chunk_processed_meanwhile)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, rt.settings)
        value = update["entry"][0]["changes"][0]["value"]
        tally = history.ingest_history(session, ctx, value, settings=rt.settings)

    assert messages(rt) == {}
    assert tally.media_wamids == []
    assert tally.counts["followups_of_dropped_messages"] == 1
    assert detail(rt, business)["counts"]["dropped_group"] == 1


def test_late_media_of_a_message_dropped_out_of_window_is_not_stored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A media update for a message its chunk dropped as older than 180 days is not stored,
    even when its own timestamp would fit the window: the drop was recorded."""
    post(web, chunk(business, 2, 1, 50, {USER: [placeholder("wamid.O", USER, ago(185))]}))
    post(web, media_followup(business, "wamid.O", USER, ago(2), media_id="333"))
    assert messages(rt) == {}
    assert dropped(rt) == {"wamid.O": "out_of_window"}


def test_business_sent_media_in_message_echoes_reach_their_placeholder_and_peer(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A history media update in ``message_echoes[]`` (``to`` omitted, ``to_user_id``) fills
    the business's placeholder, which stays in the BSUID's thread."""
    sent = {
        "from": business.number,
        "id": "wamid.M",
        "timestamp": str(ago(2)),
        "type": "media_placeholder",
        "to_user_id": SHEENA,
    }
    post(web, history_chunk(business, 0, 1, 10, [thread([sent], user_id=SHEENA)]))
    media = {
        "from": business.number,
        "to_user_id": SHEENA,
        "to_parent_user_id": SHEENA_PARENT,
        "id": "wamid.M",
        "timestamp": str(ago(2)),
        "type": "image",
        "image": {"mime_type": "image/jpeg", "sha256": "ab" * 32, "id": "24230790383178626"},
    }
    post(
        web,
        envelope(business, "history", {"contacts": [SHEENA_CONTACT], "message_echoes": [media]}),
    )
    stored = messages(rt)["wamid.M"]
    assert (stored.type, stored.direction, stored.media_id) == (
        "image",
        "outbound",
        "24230790383178626",
    )
    assert peer_rows(rt) == [(None, SHEENA, "realsheenanelson")]
    assert peer_of(rt, "wamid.M") == (None, SHEENA)


def test_user_sent_media_without_from_are_of_their_from_user_id(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A media update in ``messages[]`` with ``from`` omitted is inbound from ``from_user_id``,
    and a ``contacts[]`` entry with ``wa_id`` joins it to the number's history thread."""
    post(web, chunk(business, 0, 1, 10, {PABLO: [placeholder("wamid.M", PABLO, ago(2))]}))
    update = {
        "from_user_id": PABLO_ID,
        "id": "wamid.M",
        "timestamp": str(ago(2)),
        "type": "image",
        "image": {"mime_type": "image/jpeg", "sha256": "cd" * 32, "id": "987654321"},
    }
    post(
        web,
        envelope(
            business,
            "history",
            {"contacts": [{"wa_id": PABLO, "user_id": PABLO_ID}], "messages": [update]},
        ),
    )
    stored = messages(rt)["wamid.M"]
    assert (stored.type, stored.direction, stored.thread) == ("image", "inbound", PABLO)
    assert peer_rows(rt) == [(PABLO, PABLO_ID, None)]
