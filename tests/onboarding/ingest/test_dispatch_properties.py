"""Property: any order and duplication of a set of deliveries ends in the same database state."""

from __future__ import annotations

import functools
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from models import (
    Base,
    Contact,
    Database,
    DroppedMessage,
    HistoryChunk,
    Message,
    MessageChange,
    Onboarding,
    Peer,
    SyncState,
    SyncType,
)
from models.crypto import TokenCipher
from onboarding.ingest import dispatch as ingest
from onboarding.ingest import inbox as webhooks
from onboarding.signup.intake import SignupBody, accept_signup
from tests.conftest import TOKEN_KEY, make_settings
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    contacts,
    echo_items,
    echoes,
    edit,
    media_followup,
    placeholder,
    revoke,
    text,
    user_events,
)
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    SHEENA,
    SHEENA_CONTACT,
    app_echoes,
    business_text,
    history,
    state_contact,
    state_sync,
    thread,
    user_id_update,
    user_text,
)

NOW = int(time.time())
USER, OTHER = "16505550000", "447700900123"
LUIS_ID, LUIS_NEW_ID = "BR.50123456789012345678", "BR.60123456789012345678"
BIZ = Business(1, "102290129340398", "106540352242922", "15550783881")


def ago(days: float) -> int:
    return int(NOW - days * 86_400)


DELIVERIES: list[bytes] = [
    body_of(p)
    for p in (
        chunk(
            BIZ,
            0,
            1,
            20,
            {USER: [text("w.1", USER, ago(0.5), "hi"), placeholder("w.img", USER, ago(0.4))]},
        ),
        chunk(
            BIZ,
            1,
            1,
            50,
            {
                OTHER: [
                    text("w.2", BIZ.number, ago(30), "hello", to=OTHER),
                    placeholder("w.old", OTHER, ago(40)),
                ]
            },
        ),
        chunk(
            BIZ,
            1,
            2,
            70,
            {
                OTHER: [text("w.3", OTHER, ago(31), "ok")],
                "1203630@g.us": [text("w.g", USER, ago(5), "group")],
            },
        ),
        chunk(
            BIZ,
            2,
            1,
            100,
            {USER: [text("w.4", USER, ago(120), "old"), text("w.5", USER, ago(200), "too old")]},
        ),
        media_followup(BIZ, "w.img", USER, ago(0.4), media_id="987654321", sha256="ab" * 32),
        contacts(BIZ, ("add", "16505551111", ago(3), "Pablo"), ("add", USER, ago(3), "Ana")),
        contacts(BIZ, ("add", "16505551111", ago(2), "Pablo Morales")),
        contacts(BIZ, ("remove", USER, ago(1), None)),
        echoes(BIZ, ("w.2", OTHER, ago(30), "hello"), ("w.e", USER, ago(0.1), "see you")),
        # Late media of a message older than the window, and of one older than the media cut-off.
        media_followup(BIZ, "w.5", USER, ago(200), media_id="111"),
        media_followup(BIZ, "w.old", OTHER, ago(40), media_id="222"),
        # The business edits its echo; a user revokes one message and edits another twice.
        echo_items(BIZ, edit("w.ee", BIZ.number, ago(0.05), "w.e", "see you soon", to=USER)),
        user_events(BIZ, revoke("w.r3", OTHER, ago(30.5), "w.3")),
        user_events(BIZ, edit("w.e4a", USER, ago(119), "w.4", "older edit")),
        user_events(BIZ, edit("w.e4b", USER, ago(118), "w.4", "newest edit")),
        # A username adopter known only by BSUID, and a user seen by number in history, by
        # BSUID in an echo, and joined by a contact naming both.
        history(
            BIZ,
            1,
            3,
            80,
            [
                thread(
                    [
                        user_text("w.s1", ago(10), "another color?", phone=None, user_id=SHEENA),
                        business_text(BIZ, "w.s2", ago(9), "yes", phone=None, user_id=SHEENA),
                    ],
                    user_id=SHEENA,
                    username="realsheenanelson",
                ),
                thread([text("w.j1", PABLO, ago(8), "by number")], phone=PABLO),
            ],
        ),
        app_echoes(
            BIZ,
            [business_text(BIZ, "w.j2", ago(0.2), "by id", phone=None, user_id=PABLO_ID)],
            [{"user_id": PABLO_ID, "profile": {"name": "Pablo Morales"}}],
        ),
        state_sync(BIZ, state_contact(ago(2.5), phone=PABLO, user_id=PABLO_ID, name="Pablo M")),
        app_echoes(
            BIZ,
            [business_text(BIZ, "w.s3", ago(0.3), "thanks", phone=None, user_id=SHEENA)],
            [SHEENA_CONTACT],
        ),
        # A user whose BSUID changes: history under the old one, an echo under the new one.
        history(
            BIZ,
            0,
            2,
            30,
            [
                thread(
                    [user_text("w.l1", ago(0.3), "hola", phone=None, user_id=LUIS_ID)],
                    user_id=LUIS_ID,
                )
            ],
        ),
        user_id_update(BIZ, LUIS_ID, LUIS_NEW_ID),
        app_echoes(
            BIZ,
            [business_text(BIZ, "w.l2", ago(0.05), "hola Luis", phone=None, user_id=LUIS_NEW_ID)],
            [{"user_id": LUIS_NEW_ID}],
        ),
    )
]


def fresh_db() -> Database:
    db = Database("sqlite://")
    Base.metadata.create_all(db.engine)
    cfg = make_settings()
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQcode",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": BIZ.waba_id},
                },
            }
        )
        outcome = accept_signup(session, body, settings=cfg, cipher=TokenCipher(TOKEN_KEY))
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.phone_number_id = BIZ.phone_number_id
        onboarding.display_phone_number = "+1 555-078-3881"
        onboarding.state = "syncing"
        for t in SyncType:
            onboarding.sync(t).state = SyncState.REQUESTED.value
    return db


def deliver_all(db: Database, order: list[int]) -> None:
    cfg = make_settings()
    for index in order:
        with db.session() as session:
            intake = webhooks.receive(session, DELIVERIES[index])
            ingest.process_delivery(session, intake.delivery_id, settings=cfg)


def snapshot(db: Database) -> dict[str, Any]:
    with db.sessionmaker() as session:
        people = {
            p.id: (p.phone, p.user_id, p.parent_user_id, p.username, p.name)
            for p in session.scalars(select(Peer))
        }
        msgs = sorted(
            (
                m.wamid,
                m.thread,
                people.get(m.peer_id) if m.peer_id is not None else None,
                m.direction,
                m.source,
                m.type,
                m.text_body,
                m.media_state,
                m.media_id,
                m.media_sha256,
                m.media_error,
                int(m.sent_at.timestamp()),
                m.edited_at,
                m.revoked_at,
            )
            for m in session.scalars(select(Message))
        )
        contacts_ = sorted(
            (people[c.peer_id], c.phone, c.full_name, c.first_name, c.removed_at is not None)
            for c in session.scalars(select(Contact))
        )
        ledger = sorted(
            (
                h.phase,
                h.chunk_order,
                h.progress,
                h.messages,
                h.dropped_out_of_window,
                h.dropped_group,
            )
            for h in session.scalars(select(HistoryChunk))
        )
        onboarding = session.scalars(select(Onboarding)).one()
        history = onboarding.sync(SyncType.HISTORY)
        return {
            "messages": msgs,
            "contacts": contacts_,
            "peers": sorted(people.values(), key=str),
            "ledger": ledger,
            "history": (history.state, history.progress),
            "state": onboarding.state,
            "last_app_activity": onboarding.last_app_activity_at,
            "dropped": sorted((d.wamid, d.reason) for d in session.scalars(select(DroppedMessage))),
            "kept_changes": sorted(c.wamid for c in session.scalars(select(MessageChange))),
        }


@functools.cache
def reference() -> dict[str, Any]:
    db = fresh_db()
    deliver_all(db, list(range(len(DELIVERIES))))
    state = snapshot(db)
    db.dispose()
    return state


@settings(max_examples=30, deadline=None)
@given(
    order=st.permutations(range(len(DELIVERIES))),
    repeats=st.lists(st.integers(0, len(DELIVERIES) - 1), max_size=6),
    data=st.data(),
)
def test_any_order_and_duplication_gives_the_same_state(
    order: list[int], repeats: list[int], data: st.DataObject
) -> None:
    """Shuffled and repeated deliveries always converge to the in-order result."""
    sequence = list(order)
    for item in repeats:
        sequence.insert(data.draw(st.integers(0, len(sequence))), item)
    db = fresh_db()
    deliver_all(db, sequence)
    assert snapshot(db) == reference()
    db.dispose()


def test_reference_state_is_what_the_deliveries_say() -> None:
    """The in-order state itself is right: exact messages, contacts and completion."""
    state = reference()
    wamids = [m[0] for m in state["messages"]]
    assert wamids == [
        "w.1",
        "w.2",
        "w.3",
        "w.4",
        "w.e",
        "w.img",
        "w.j1",
        "w.j2",
        "w.l1",
        "w.l2",
        "w.old",
        "w.s1",
        "w.s2",
        "w.s3",
    ]
    by_id = {m[0]: m for m in state["messages"]}
    assert by_id["w.2"][4] == "app_echo"
    assert by_id["w.img"][5] == "image"
    assert by_id["w.img"][7:9] == ("awaiting_media", "987654321")
    assert by_id["w.old"][7] == "skipped_too_old"
    assert by_id["w.old"][7:9] == ("skipped_too_old", "222")
    assert by_id["w.e"][6] == "see you soon"
    assert by_id["w.3"][6] is None
    assert by_id["w.3"][13] is not None  # revoked
    assert by_id["w.4"][6] == "newest edit"
    assert ("w.5", "out_of_window") in state["dropped"]
    assert state["kept_changes"] == []
    pablo = (PABLO, PABLO_ID, None, None, "Pablo Morales")
    sheena = (None, SHEENA, SHEENA_CONTACT["parent_user_id"], "realsheenanelson", "Sheena Nelson")
    assert {w: by_id[w][2] for w in ("w.j1", "w.j2", "w.s1", "w.s2", "w.s3")} == {
        "w.j1": pablo,
        "w.j2": pablo,
        "w.s1": sheena,
        "w.s2": sheena,
        "w.s3": sheena,
    }
    assert [by_id[w][3] for w in ("w.s1", "w.s2", "w.s3")] == ["inbound", "outbound", "outbound"]
    luis = (None, LUIS_NEW_ID, None, None, None)
    assert (by_id["w.l1"][2], by_id["w.l2"][2]) == (luis, luis)
    assert len(state["peers"]) == 6  # USER, OTHER, 16505551111, Pablo, Sheena, Luis
    assert [c[1:] for c in state["contacts"]] == [
        ("12125557890", "Pablo M", "Pablo", False),
        ("16505550000", "Ana", "Ana", True),
        ("16505551111", "Pablo Morales", "Pablo", False),
    ]
    assert state["history"] == ("completed", 100)
    assert state["state"] == "synced"
    assert sum(row[4] for row in state["ledger"]) == 1  # w.5, beyond 180 days
    assert sum(row[5] for row in state["ledger"]) == 1  # the group message
