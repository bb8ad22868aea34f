"""App echoes, and users' edits and revokes applied to stored messages."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import (
    InboxDelivery,
    Onboarding,
    Peer,
)
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    chunk,
    echoes,
    envelope,
    text,
)
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    PABLO_NEW_ID,
    SHEENA,
    SHEENA_CONTACT,
    SHEENA_PARENT,
    app_echoes,
    business_text,
    changed_user_id,
    history,
    thread,
    user_text,
)
from tests.onboarding.ingest.helpers import USER, ago, detail, messages, peer_of, peer_rows, post


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


def test_an_echo_to_a_username_adopter_is_stored_under_its_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An echo with ``to`` omitted goes to ``to_user_id``'s peer, which Meta's ``contacts[]``
    entry gives its name, username and parent BSUID."""
    echo = business_text(business, "wamid.E", ago(0.01), "See you", phone=None, user_id=SHEENA)
    echo["to_parent_user_id"] = SHEENA_PARENT
    post(web, app_echoes(business, [echo], [SHEENA_CONTACT]))
    stored = messages(rt)["wamid.E"]
    assert (stored.direction, stored.source, stored.thread) == ("outbound", "app_echo", SHEENA)
    with rt.db.sessionmaker() as session:
        peer = session.scalars(select(Peer)).one()
        assert (peer.phone, peer.user_id, peer.parent_user_id) == (None, SHEENA, SHEENA_PARENT)
        assert (peer.name, peer.username) == ("Sheena Nelson", "realsheenanelson")


@pytest.mark.parametrize("echo_first", [True, False])
def test_an_echo_contact_with_wa_id_joins_the_history_thread_of_that_number(
    web: TestClient, rt: Runtime, business: Business, echo_first: bool
) -> None:
    """History under a number and an echo naming only the BSUID, with a ``contacts[]`` entry
    giving both, end in one peer in either order."""
    old = chunk(business, 1, 1, 10, {PABLO: [text("wamid.H", PABLO, ago(3), "hi")]})
    echo = app_echoes(
        business,
        [business_text(business, "wamid.E", ago(0.01), "hello", phone=None, user_id=PABLO_ID)],
        [{"wa_id": PABLO, "user_id": PABLO_ID, "profile": {"name": "Pablo Morales"}}],
    )
    for payload in [echo, old] if echo_first else [old, echo]:
        post(web, payload)
    assert peer_rows(rt) == [(PABLO, PABLO_ID, None)]
    assert peer_of(rt, "wamid.H") == peer_of(rt, "wamid.E") == (PABLO, PABLO_ID)


def test_a_user_changed_user_id_system_message_moves_the_peer(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A ``messages`` system message of type user_changed_user_id gives the peer its new
    BSUID; its history stays."""
    post(
        web,
        history(
            business,
            1,
            1,
            10,
            [
                thread(
                    [user_text("wamid.1", ago(2), "hi", phone=None, user_id=PABLO_ID)],
                    user_id=PABLO_ID,
                )
            ],
        ),
    )
    post(
        web,
        envelope(
            business,
            "messages",
            {"messages": [changed_user_id("wamid.sys", ago(0.01), PABLO_ID, PABLO_NEW_ID)]},
        ),
    )
    assert peer_rows(rt) == [(None, PABLO_NEW_ID, None)]
    assert peer_of(rt, "wamid.1") == (None, PABLO_NEW_ID)


def test_a_system_message_without_the_new_bsuid_is_rejected(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A user_changed_user_id without ``system.user_id`` changes nothing and is counted."""
    broken = changed_user_id("wamid.sys", ago(0.01), PABLO_ID, PABLO_NEW_ID)
    del broken["system"]["user_id"]
    post(web, envelope(business, "messages", {"messages": [broken]}))
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.summary == {
        "messages": {
            "rejected": 1,
            "rejected_reasons": [
                "user_changed_user_id without a usable from_user_id and system.user_id"
            ],
        }
    }
