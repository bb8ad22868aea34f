"""Late media outside the history windows, and edits and revokes before their message, on
PostgreSQL.

Deliveries are stored in the inbox and processed in this process into the real database (the
paths that differ by dialect: ``COPY`` and its merge, ``ON CONFLICT`` records, the conditional
updates), in both arrival orders; the race between a change and the chunk holding its message
is played with two real transactions.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, StackConfig
from config import Settings
from models import Database, DroppedMessage, Message, MessageChange, MessageSource, Onboarding
from onboarding.ingest.changes import apply_changes, apply_pending, parse_change
from onboarding.ingest.dispatch import DeliveryOutcome, process_delivery
from onboarding.ingest.inbox import receive
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA, Context, Tally, message_row
from onboarding.sandbox import Sandbox, SandboxServer
from onboarding.store import upsert_messages
from tests.integration._flow import onboarded_business
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    echo_items,
    echoes,
    edit,
    media_followup,
    placeholder,
    revoke,
    text,
    user_events,
)

pytestmark = pytest.mark.integration

USER = "16505550000"
MEDIA_ID = "24230790383178626"
ORDERS = pytest.mark.parametrize("first", [0, 1], ids=["late-first", "original-first"])


def ago(days: float) -> int:
    return int(time.time() - days * 86_400)


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@pytest.fixture
def business(api: CoexistApi, sandbox: Sandbox) -> Business:
    return onboarded_business(api, sandbox)


@pytest.fixture
def settings(stack_config: StackConfig, sandbox_server: SandboxServer) -> Settings:
    return stack_config.settings(sandbox_server.url)


def process(db: Database, settings: Settings, *payloads: dict[str, Any]) -> list[DeliveryOutcome]:
    """Store each payload in the inbox and process it, in this order."""
    outcomes = []
    for payload in payloads:
        with db.session() as session:
            intake = receive(session, body_of(payload))
            outcomes.append(process_delivery(session, intake.delivery_id, settings=settings))
    return outcomes


def in_order(first: int, late: dict[str, Any], original: dict[str, Any]) -> tuple[Any, ...]:
    return (late, original) if first == 0 else (original, late)


def stored(db: Database) -> dict[str, Message]:
    with db.sessionmaker() as session:
        return {m.wamid: m for m in session.scalars(select(Message))}


def table(db: Database, model: Any) -> list[Any]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(model)))


@ORDERS
def test_out_of_window_late_media_is_never_stored_in_either_order(
    db: Database, settings: Settings, business: Business, first: int
) -> None:
    """A message older than 180 days and its late media leave no message, one record."""
    ts = ago(185)
    late = media_followup(business, "wamid.A2", business.number, ts, media_id=MEDIA_ID)
    original = chunk(business, 2, 1, 50, {USER: [placeholder("wamid.A2", business.number, ts)]})
    process(db, settings, *in_order(first, late, original))
    assert stored(db) == {}
    assert [(d.wamid, d.reason) for d in table(db, DroppedMessage)] == [
        ("wamid.A2", "out_of_window")
    ]


@ORDERS
def test_too_old_late_media_is_skipped_and_not_downloaded_in_either_order(
    db: Database, settings: Settings, business: Business, first: int
) -> None:
    """Late media older than 14 days ends skipped with its reason, and no download is asked."""
    ts = ago(30)
    late = media_followup(business, "wamid.A2", business.number, ts, media_id=MEDIA_ID)
    original = chunk(business, 1, 1, 50, {USER: [placeholder("wamid.A2", business.number, ts)]})
    outcomes = process(db, settings, *in_order(first, late, original))
    message = stored(db)["wamid.A2"]
    assert (message.type, message.media_id, message.thread) == ("image", MEDIA_ID, USER)
    assert (message.media_state, message.media_error) == ("skipped_too_old", TOO_OLD_FOR_MEDIA)
    assert [o.media_message_ids for o in outcomes] == [[], []]


@ORDERS
def test_a_business_edit_echo_ends_the_same_in_either_order(
    db: Database, settings: Settings, business: Business, first: int
) -> None:
    """An edit echo before or after its echo gives the edited text at the edit's time."""
    sent, edited = ago(0.02), ago(0.01)
    late = echo_items(business, edit("wamid.ED", business.number, edited, "wamid.E9", "6pm", USER))
    original = echoes(business, ("wamid.E9", USER, sent, "See you at 5pm"))
    process(db, settings, *in_order(first, late, original))
    message = stored(db)["wamid.E9"]
    assert (message.text_body, message.edited_at) == ("6pm", at(edited))
    assert table(db, MessageChange) == []


@ORDERS
def test_a_user_revoke_and_its_chunk_end_the_same_in_either_order(
    db: Database, settings: Settings, business: Business, first: int
) -> None:
    """A user's revoke before or after its history message leaves it revoked, text removed."""
    sent, revoked = ago(1), ago(0.5)
    late = user_events(business, revoke("wamid.RV", USER, revoked, "wamid.U1"))
    original = chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "oops")]})
    process(db, settings, *in_order(first, late, original))
    message = stored(db)["wamid.U1"]
    assert (message.text_body, message.revoked_at) == (None, at(revoked))
    assert table(db, MessageChange) == []


def test_the_newest_edit_wins_and_a_revoke_is_final(
    db: Database, settings: Settings, business: Business
) -> None:
    """Edits applied newest first keep the newest text; a later revoke removes it for good."""
    sent = ago(1)
    process(
        db,
        settings,
        chunk(business, 0, 1, 10, {USER: [text("wamid.U1", USER, sent, "v0")]}),
        user_events(business, edit("wamid.E2", USER, sent + 120, "wamid.U1", "v2")),
        user_events(business, edit("wamid.E1", USER, sent + 60, "wamid.U1", "v1")),
    )
    assert stored(db)["wamid.U1"].text_body == "v2"
    process(
        db,
        settings,
        user_events(business, revoke("wamid.R1", USER, sent + 180, "wamid.U1")),
        user_events(business, edit("wamid.E3", USER, sent + 240, "wamid.U1", "v3")),
        chunk(business, 0, 2, 20, {USER: [text("wamid.U1", USER, sent, "v0")]}),
    )
    message = stored(db)["wamid.U1"]
    assert (message.text_body, message.revoked_at) == (None, at(sent + 180))


def test_an_edit_kept_while_its_message_is_being_stored_is_applied(
    db: Database, settings: Settings, business: Business
) -> None:
    """A message stored in a transaction that had not committed when the edit looked for it,
    nor looked for kept changes before the edit was kept, still ends edited."""
    sent, edited = ago(1), ago(0.9)
    event = edit("wamid.ED", USER, edited, "wamid.U1", "fixed")
    with db.session() as storing, db.session() as changing:
        onboarding = storing.get_one(Onboarding, business.onboarding_id)
        ctx = Context.of(onboarding, business.number, settings)
        row = message_row(
            ctx,
            text("wamid.U1", USER, sent, "typo"),
            source=MessageSource.HISTORY,
            thread=USER,
            tally=Tally(),
            now=datetime.now(tz=UTC),
        )
        assert row is not None
        upsert_messages(storing, [row])  # not committed yet

        other = Context.of(
            changing.get_one(Onboarding, business.onboarding_id), business.number, settings
        )
        tally = Tally()
        change = parse_change(other, event, tally)
        assert change is not None
        apply_changes(changing, other, [change], tally, datetime.now(tz=UTC))
        assert tally.counts["edits_pending"] == 1

        storing.commit()
        apply_pending(storing, business.onboarding_id, ["wamid.U1"], tally)
    message = stored(db)["wamid.U1"]
    assert (message.text_body, message.edited_at) == ("fixed", at(edited))
    assert table(db, MessageChange) == []
