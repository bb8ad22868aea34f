"""Every change a provider cares about writes its feed event, in the change's transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from config import Settings
from models import (
    Database,
    FollowUp,
    MediaState,
    Message,
    Onboarding,
    OnboardingState,
    SyncType,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.feed.events import EventType
from onboarding.feed.log import Cursor, read
from onboarding.feed.schemas import check
from onboarding.followups import schedule as followups
from onboarding.ingest import media
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA
from onboarding.meta.graph import GraphClient
from onboarding.runtime import Runtime
from onboarding.signup.intake import SignupBody, accept_signup
from onboarding.states import raise_alert, resolve_alert, transition
from tests.onboarding.deliveries import (
    Business,
    chunk,
    contacts,
    declined_value,
    echo_items,
    echoes,
    edit,
    envelope,
    placeholder,
    revoke,
    text,
)
from tests.onboarding.ingest.bsuid_payloads import PABLO_ID, PABLO_NEW_ID
from tests.onboarding.ingest.helpers import USER, ago, post

S = OnboardingState


# Every event these tests make the product write must match its documented body
# (onboarding/feed/schemas.py): after each test, each event is validated, unknown keys refused.
@pytest.fixture(autouse=True)
def _bodies_as_documented(request: pytest.FixtureRequest) -> Iterator[None]:
    # Asked for before the test runs, so the database outlives this fixture's check.
    db: Database | None = request.getfixturevalue("db") if "db" in request.fixturenames else None
    yield
    if db is None:
        return
    if "feed_events" not in inspect(db.engine).get_table_names():
        return
    with db.sessionmaker() as session:
        cursor = Cursor()
        while True:
            page = read(session, cursor, 1000)
            if not page.events:
                return
            for event in page.events:
                check(event)
            cursor = page.next_cursor


def events(db: Database, *types: EventType) -> list[dict[str, Any]]:
    """Every readable event (of these types, if given), in feed order."""
    with db.sessionmaker() as session:
        out: list[dict[str, Any]] = []
        after = Cursor()
        while True:
            page = read(session, after, 1000, types=types)
            out += page.events
            if not page.events:
                return out
            after = page.next_cursor


def data(db: Database, type: EventType) -> list[dict[str, Any]]:
    return [e["data"] for e in events(db, type)]


def texts(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [text(f"wamid.{i}", USER, ago(3) + i, f"hello {i}") for i in range(start, start + n)]


CONTENT = b"a small jpeg" * 10
DIGEST = hashlib.sha256(CONTENT).hexdigest()
MEDIA_ID = "24230790383178626"


def meta_media(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """Meta's media endpoint (``status``: 200, or a refusal) and the download."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"/{MEDIA_ID}"):
            if status != 200:
                return httpx.Response(
                    status,
                    json={
                        "error": {
                            "message": "Invalid media id",
                            "type": "OAuthException",
                            "code": 100,
                        }
                    },
                )
            return httpx.Response(
                200,
                json={
                    "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
                    "mime_type": "image/jpeg",
                    "sha256": DIGEST,
                    "file_size": len(CONTENT),
                    "id": MEDIA_ID,
                },
            )
        return httpx.Response(200, content=CONTENT)

    return handler


@pytest.fixture
def message_id(db: Database, settings: Settings, cipher: TokenCipher, tmp_path: Path) -> int:
    """An onboarding with a business token and one image awaiting its download."""
    settings.media_dir = tmp_path / "media"
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQc",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": "1"},
                },
            }
        )
        outcome = accept_signup(session, body, settings=settings, cipher=cipher)
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.token_ciphertext = cipher.encrypt("EAAGbusiness")
        message = Message(
            onboarding_id=onboarding.id,
            wamid="wamid.M",
            thread=USER,
            direction="inbound",
            source="history",
            sent_at=utcnow(),
            type="image",
            media_state=MediaState.AWAITING.value,
            media_id=MEDIA_ID,
            media_mime="image/jpeg",
            media_id_at=utcnow(),
            media_attempts=0,
        )
        session.add(message)
        session.flush()
        return message.id


def download(
    db: Database,
    settings: Settings,
    cipher: TokenCipher,
    handler: Callable[[httpx.Request], httpx.Response],
    mid: int,
) -> str:
    graph = GraphClient(
        app_id="1", app_secret="s", transport=httpx.MockTransport(handler), max_wait=0.001
    )
    with db.session() as session:
        return media.download(session, graph, settings=settings, cipher=cipher, message_id=mid)


# -- messages -------------------------------------------------------------------------------


def test_a_history_chunk_of_two_pages_writes_one_event_per_page(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A 15-message chunk stored in pages of 10 writes two messages.stored events, all told."""
    rt.settings.ingest_page_size = 10
    post(web, chunk(business, 0, 1, 40, {USER: texts(15)}))
    pages = data(rt.db, EventType.MESSAGES_STORED)
    assert [p["count"] for p in pages] == [10, 5]
    assert {p["source"] for p in pages} == {"history"}
    assert {(p["phase"], p["chunk_order"]) for p in pages} == {(0, 1)}
    told = [m["wamid"] for p in pages for m in p["messages"]]
    assert told == [f"wamid.{i}" for i in range(15)]


def test_a_stored_message_is_told_with_its_fields(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Each listed message carries its wamid, thread, peer, direction, time, type and text."""
    post(web, chunk(business, 0, 1, 40, {USER: [text("wamid.A", USER, 1_790_000_000, "hi")]}))
    (page,) = data(rt.db, EventType.MESSAGES_STORED)
    (told,) = page["messages"]
    assert told["peer_id"] is not None
    assert {k: v for k, v in told.items() if k != "peer_id"} == {
        "wamid": "wamid.A",
        "thread": USER,
        "direction": "inbound",
        "sent_at": "2026-09-21T14:13:20+00:00",
        "type": "text",
        "text": "hi",
        "media": None,
    }


def test_a_redelivered_chunk_tells_of_nothing_again(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """The same chunk twice stores and tells each message once; a new one in it is told."""
    post(web, chunk(business, 0, 1, 40, {USER: texts(3)}))
    post(web, chunk(business, 0, 1, 40, {USER: texts(4)}))
    pages = data(rt.db, EventType.MESSAGES_STORED)
    assert [[m["wamid"] for m in p["messages"]] for p in pages] == [
        ["wamid.0", "wamid.1", "wamid.2"],
        ["wamid.3"],
    ]


def test_an_old_placeholder_is_told_as_skipped_media(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A placeholder older than the media cut-off is listed with its media state and writes
    media.skipped with the reason."""
    post(web, chunk(business, 0, 1, 40, {USER: [placeholder("wamid.P", USER, ago(30))]}))
    (page,) = data(rt.db, EventType.MESSAGES_STORED)
    assert page["messages"][0]["media"] == {
        "state": MediaState.SKIPPED_TOO_OLD.value,
        "mime": None,
        "sha256": None,
    }
    assert data(rt.db, EventType.MEDIA_SKIPPED) == [
        {"wamid": "wamid.P", "reason": TOO_OLD_FOR_MEDIA}
    ]


def test_app_echoes_are_told_as_app_echo_messages(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An echo delivery writes messages.stored with source app_echo, outbound."""
    post(web, echoes(business, ("wamid.E", USER, ago(0.1), "on my way")))
    (page,) = data(rt.db, EventType.MESSAGES_STORED)
    assert page["source"] == "app_echo"
    assert [(m["wamid"], m["direction"], m["text"]) for m in page["messages"]] == [
        ("wamid.E", "outbound", "on my way")
    ]


def test_an_echo_of_a_message_history_brought_tells_nothing_new(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A message seen in history and then as an echo is one message, told once."""
    post(web, chunk(business, 0, 1, 40, {USER: [text("wamid.B", business.number, ago(1), "x")]}))
    post(web, echoes(business, ("wamid.B", USER, ago(1), "x")))
    pages = data(rt.db, EventType.MESSAGES_STORED)
    assert [(p["source"], p["count"]) for p in pages] == [("history", 1)]


def test_a_rolled_back_change_writes_no_event(rt: Runtime, business: Business) -> None:
    """An event written in a transaction that rolls back is gone with its change."""
    before = len(events(rt.db))
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        assert transition(session, onboarding, S.FAILED, "an operator's test")
        raise_alert(session, onboarding.id, "test_kind", "a test alert")
        session.rollback()
    assert len(events(rt.db)) == before


def test_edits_and_revokes_are_told_when_they_change_a_message(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit writes message.edited with the new text; a revoke message.revoked; an older
    edit arriving later changes nothing and tells nothing."""
    post(web, echoes(business, ("wamid.O", USER, ago(0.2), "at 5pm")))
    changed = ago(0.1)
    post(
        web,
        echo_items(business, edit("wamid.ED", business.number, changed, "wamid.O", "6pm", USER)),
    )
    post(
        web,
        echo_items(
            business, edit("wamid.ED0", business.number, changed - 60, "wamid.O", "4pm", USER)
        ),
    )
    post(
        web, echo_items(business, revoke("wamid.RV", business.number, changed + 1, "wamid.O", USER))
    )
    (edited,) = data(rt.db, EventType.MESSAGE_EDITED)
    assert edited["wamid"] == "wamid.ED"
    assert edited["original_wamid"] == "wamid.O"
    assert edited["text"] == "6pm"
    (revoked,) = data(rt.db, EventType.MESSAGE_REVOKED)
    assert (revoked["wamid"], revoked["original_wamid"], revoked["text"]) == (
        "wamid.RV",
        "wamid.O",
        None,
    )


def test_an_edit_before_its_message_is_told_when_applied(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An edit kept for a message still to come is told when the message arrives."""
    post(
        web, echo_items(business, edit("wamid.ED", business.number, ago(1), "wamid.L", "new", USER))
    )
    assert data(rt.db, EventType.MESSAGE_EDITED) == []
    post(web, chunk(business, 0, 1, 40, {USER: [text("wamid.L", business.number, ago(2), "old")]}))
    assert [e["text"] for e in data(rt.db, EventType.MESSAGE_EDITED)] == ["new"]


# -- contacts and peers ---------------------------------------------------------------------


def test_a_contacts_page_tells_its_upserts_and_removals(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Adds are told in contacts.upserted, removals in contacts.removed, each with its time."""
    post(
        web,
        contacts(
            business,
            ("add", "16505550001", 1_790_000_000, "Ana Lima"),
            ("remove", "16505550002", 1_790_000_001, None),
        ),
    )
    (upserted,) = data(rt.db, EventType.CONTACTS_UPSERTED)
    (added,) = upserted["contacts"]
    assert (added["phone"], added["full_name"], added["first_name"]) == (
        "16505550001",
        "Ana Lima",
        "Ana",
    )
    assert added["changed_at"] == "2026-09-21T14:13:20+00:00"
    assert added["peer_id"] is not None
    (removed,) = data(rt.db, EventType.CONTACTS_REMOVED)
    assert [c["phone"] for c in removed["contacts"]] == ["16505550002"]


def test_a_user_id_update_tells_the_peer_its_new_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """user_id_update moving a known peer writes peer.user_id_changed; a repeat writes none."""
    post(
        web,
        envelope(
            business,
            "smb_app_state_sync",
            {
                "state_sync": [
                    {
                        "type": "contact",
                        "contact": {"user_id": PABLO_ID, "full_name": "Pablo"},
                        "action": "add",
                        "metadata": {"timestamp": str(ago(1))},
                    }
                ]
            },
        ),
    )
    update = envelope(
        business,
        "user_id_update",
        {"user_id": {"previous": PABLO_ID, "current": PABLO_NEW_ID}},
    )
    post(web, update)
    post(web, update)
    (changed,) = data(rt.db, EventType.PEER_USER_ID_CHANGED)
    assert (changed["previous"], changed["current"]) == (PABLO_ID, PABLO_NEW_ID)
    assert changed["peer_id"] is not None


# -- syncs and states -----------------------------------------------------------------------


def test_history_progress_and_completion_are_told(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Each new progress writes sync.progress; 100 with every chunk writes sync.completed, and
    the onboarding's move to synced is told."""
    post(web, chunk(business, 0, 0, 40, {USER: texts(1)}))
    post(web, chunk(business, 0, 0, 40, {USER: texts(1)}))  # no new progress
    post(web, chunk(business, 0, 1, 100, {USER: texts(1, 1)}))
    assert data(rt.db, EventType.SYNC_PROGRESS) == [
        {"sync_type": "history", "progress": 40},
        {"sync_type": "history", "progress": 100},
    ]
    assert data(rt.db, EventType.SYNC_COMPLETED) == [{"sync_type": "history"}]
    moves = [(d["from"], d["to"]) for d in data(rt.db, EventType.ONBOARDING_STATE_CHANGED)]
    assert moves[-1] == ("syncing", "synced")


def test_completion_with_gaps_lists_the_missing_chunks(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Progress 100 with chunk_orders missing writes sync.completed_with_gaps naming them; the
    late chunk that fills them writes sync.completed."""
    post(web, chunk(business, 0, 3, 100, {USER: texts(1)}))
    assert data(rt.db, EventType.SYNC_COMPLETED_WITH_GAPS) == [
        {"sync_type": "history", "missing_chunks": [{"phase": 0, "chunk_orders": [1, 2]}]}
    ]
    post(web, chunk(business, 0, 1, 40, {USER: texts(1, 1)}))
    post(web, chunk(business, 0, 2, 60, {USER: texts(1, 2)}))
    assert data(rt.db, EventType.SYNC_COMPLETED) == [{"sync_type": "history"}]


def test_a_declined_history_is_told(web: TestClient, rt: Runtime, business: Business) -> None:
    """2593109 writes sync.declined, the move to history_declined and its alert."""
    post(web, envelope(business, "history", declined_value(business)))
    assert data(rt.db, EventType.SYNC_DECLINED) == [{"sync_type": "history"}]
    assert data(rt.db, EventType.ONBOARDING_STATE_CHANGED)[-1]["to"] == "history_declined"
    assert [a["kind"] for a in data(rt.db, EventType.ALERT_RAISED)] == ["history_declined"]


def test_an_onboarding_tells_every_step_from_its_signup(rt: Runtime, business: Business) -> None:
    """The signup writes its creation, then each move of the hand-off, with its cause; both
    syncs are told requested with Meta's request id."""
    moves = [(d["from"], d["to"]) for d in data(rt.db, EventType.ONBOARDING_STATE_CHANGED)]
    assert moves == [
        (None, "received"),
        ("received", "token_exchanged"),
        ("token_exchanged", "subscribed"),
        ("subscribed", "syncing"),
    ]
    requested = data(rt.db, EventType.SYNC_REQUESTED)
    assert {r["sync_type"] for r in requested} == {t.value for t in SyncType}
    assert all(r["request_id"] for r in requested)


def test_alerts_are_told_when_raised_and_resolved(rt: Runtime, business: Business) -> None:
    """raise_alert writes alert.raised once per alert; resolving it writes alert.resolved."""
    with rt.db.session() as session:
        raise_alert(session, business.onboarding_id, "test_kind", "look at this", "error")
        raise_alert(session, business.onboarding_id, "test_kind", "look at this", "error")
    with rt.db.session() as session:
        assert resolve_alert(session, business.onboarding_id, "test_kind")
    expected = {"kind": "test_kind", "severity": "error", "message": "look at this"}
    assert data(rt.db, EventType.ALERT_RAISED) == [expected]
    assert data(rt.db, EventType.ALERT_RESOLVED) == [expected]


# -- media ----------------------------------------------------------------------------------


def test_overdue_media_is_told_expired(web: TestClient, rt: Runtime, business: Business) -> None:
    """The watchdog expiring awaiting media writes media.expired for each message."""
    post(web, chunk(business, 0, 1, 40, {USER: [placeholder("wamid.M", USER, ago(2))]}))
    later = utcnow() + timedelta(days=rt.settings.media_id_ttl_days + 1)
    with rt.db.sessionmaker() as session:
        assert media.expire_overdue(session, settings=rt.settings, now=later) == 1
    (expired,) = data(rt.db, EventType.MEDIA_EXPIRED)
    assert expired["wamid"] == "wamid.M"
    assert "7-day" in expired["error"]


def test_downloaded_and_failed_media_are_told(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """A download that stores the media writes media.stored with its hash, type and size; one
    Meta refuses writes media.failed with the reason."""
    assert download(db, settings, cipher, meta_media(200), message_id) == MediaState.STORED
    assert data(db, EventType.MEDIA_STORED) == [
        {"wamid": "wamid.M", "sha256": DIGEST, "mime": "image/jpeg", "size": len(CONTENT)}
    ]
    with db.session() as session:
        message = session.get_one(Message, message_id)
        message.media_state = MediaState.AWAITING.value
    assert download(db, settings, cipher, meta_media(400), message_id) == MediaState.FAILED
    (failed,) = data(db, EventType.MEDIA_FAILED)
    assert failed["wamid"] == "wamid.M"
    assert failed["error"]


# -- lifecycle, pauses, follow-ups ---------------------------------------------------------


def account_update(business: Business, value: dict[str, Any], time: int) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": business.waba_id,
                "time": time,
                "changes": [{"field": "account_update", "value": value}],
            }
        ],
    }


def test_a_disconnection_is_told_with_meta_s_reason(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """PARTNER_REMOVED writes account.disconnected with its reason and initiator."""
    removed = {
        "phone_number": business.number,
        "event": "PARTNER_REMOVED",
        "disconnection_info": {"reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    }
    post(web, account_update(business, removed, 1_800_000_000))
    assert data(rt.db, EventType.ACCOUNT_DISCONNECTED) == [
        {"event": "PARTNER_REMOVED", "reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"}
    ]
    assert data(rt.db, EventType.ONBOARDING_STATE_CHANGED)[-1]["to"] == "disconnected"


def test_offboarding_and_reconnection_are_told(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """ACCOUNT_OFFBOARDED writes account.reconnecting; ACCOUNT_RECONNECTED account.reconnected
    with the state it went back to."""
    post(web, account_update(business, {"event": "ACCOUNT_OFFBOARDED"}, 1_800_000_000))
    post(web, account_update(business, {"event": "ACCOUNT_RECONNECTED"}, 1_800_000_600))
    assert data(rt.db, EventType.ACCOUNT_RECONNECTING) == [
        {"event": "ACCOUNT_OFFBOARDED", "resume_state": "syncing"}
    ]
    assert data(rt.db, EventType.ACCOUNT_RECONNECTED) == [
        {"event": "ACCOUNT_RECONNECTED", "state": "syncing"}
    ]


def test_a_ban_pause_and_its_lift_are_told(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """DISABLE writes account.paused; REINSTATE writes account.resumed."""
    ban = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE"}}
    post(web, account_update(business, ban, 1_800_000_000))
    ban["ban_info"] = {"waba_ban_state": "REINSTATE"}
    post(web, account_update(business, ban, 1_800_000_600))
    (paused,) = data(rt.db, EventType.ACCOUNT_PAUSED)
    assert paused["event"] == "DISABLED_UPDATE"
    assert paused["paused_by"] == ["DISABLED_UPDATE"]
    assert paused["reason"].startswith("DISABLED_UPDATE")
    (resumed,) = data(rt.db, EventType.ACCOUNT_RESUMED)
    assert resumed["cause"].startswith("DISABLED_UPDATE")


def test_a_restriction_is_told_with_what_it_stops(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """ACCOUNT_RESTRICTION writes account.paused listing each restriction, its expiry and the
    sends it stops."""
    restriction = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 4_000_000_000}
        ],
    }
    post(web, account_update(business, restriction, 1_800_000_000))
    (paused,) = data(rt.db, EventType.ACCOUNT_PAUSED)
    assert paused["restrictions"] == [
        {
            "type": "RESTRICTED_BIZ_INITIATED_MESSAGING",
            "expires_at": "2096-10-02T07:06:40+00:00",
            "stops": ["template"],
        }
    ]


def test_follow_ups_are_told_when_scheduled_and_acknowledged(
    rt: Runtime, business: Business
) -> None:
    """Scheduling writes follow_up.scheduled once per new follow-up (a second run none);
    acknowledging one writes follow_up.acknowledged."""
    with rt.db.sessionmaker() as session:
        followups.schedule(session, settings=rt.settings)
        followups.schedule(session, settings=rt.settings)
        created = session.scalars(select(FollowUp).order_by(FollowUp.id)).all()
    scheduled = data(rt.db, EventType.FOLLOW_UP_SCHEDULED)
    assert sorted(s["follow_up_id"] for s in scheduled) == [f.id for f in created]
    assert {s["kind"] for s in scheduled} >= {"companion_relink"}
    with rt.db.sessionmaker() as session:
        followups.acknowledge(session, created[0].id)
    (acknowledged,) = data(rt.db, EventType.FOLLOW_UP_ACKNOWLEDGED)
    assert acknowledged["follow_up_id"] == created[0].id


def test_no_event_is_written_with_the_feed_off(rt: Runtime, business: Business) -> None:
    """A database opened with the feed off writes no event for a change."""
    before = len(events(rt.db))
    off = Database(rt.db.url, feed=False)
    try:
        with off.session() as session:
            raise_alert(session, business.onboarding_id, "test_kind", "quiet")
    finally:
        off.dispose()
    assert len(events(rt.db)) == before


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_is_dotted_lowercase(kind: EventType) -> None:
    """Event type names are dotted lowercase words."""
    assert kind.value == kind.value.lower()
    assert "." in kind.value
