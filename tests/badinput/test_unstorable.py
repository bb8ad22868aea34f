"""Values no column can hold, in signed deliveries: cleaned where they are content, rejected
where they are keys, never a failed write (PostgreSQL holds neither NUL nor lone surrogates)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Contact, HistoryChunk, InboxDelivery, InboxStatus, Message, Onboarding
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.badinput.helpers import (
    RECENT,
    USER,
    history_with,
    inbox,
    msg,
    post,
)
from tests.onboarding.deliveries import (
    HUGE_INTEGER,
    Business,
    chunk,
    contacts,
    deepest_decodable,
    echoes,
    envelope,
    meta_json,
    text,
)

# -- values no column can hold: cleaned where they are content, rejected where they are keys ---


def image(caption: Any, media_id: Any = "1234") -> dict[str, Any]:
    return msg(type="image", text=..., image={"id": media_id, "caption": caption})


def location(**fields: Any) -> dict[str, Any]:
    return msg(type="location", text=..., location={"name": "Shop", **fields})


#: A poison message beside a good one: what is stored of it (columns, with its wamid), or the
#: reason it is rejected.
POISON_MESSAGES = [
    pytest.param(
        image("a\x00b"),
        {"text_body": "ab", "raw.image.caption": "ab"},
        id="caption-nul",
    ),
    pytest.param(image("a\ud800b"), {"text_body": "a\ufffdb"}, id="caption-lone-surrogate"),
    pytest.param(msg(text={"body": "\udc00hi"}), {"text_body": "\ufffdhi"}, id="text-lone-low"),
    pytest.param(msg(history_context={"status": "RE\x00AD"}), {"status": "READ"}, id="status-nul"),
    pytest.param(
        msg(type="reaction", text=..., reaction={"emo\x00ji": "\x00", "message_id": "w.1"}),
        {"raw.reaction": {"emoji": "", "message_id": "w.1"}},
        id="json-key-and-value-nul",
    ),
    pytest.param(msg(id="\x00"), "usable id", id="id-nul"),
    pytest.param(msg(type="\x00"), "no message type", id="type-nul"),
    pytest.param(msg(id="wamid.\ud800"), {"wamid": "wamid.\ufffd"}, id="id-lone-surrogate"),
    pytest.param(
        location(latitude=math.nan, longitude=math.inf),
        {"raw.location": {"name": "Shop", "latitude": None, "longitude": None}},
        id="nan-and-infinity",
    ),
    pytest.param(
        location(latitude=HUGE_INTEGER, longitude=10**40),
        {"raw.location": {"name": "Shop", "latitude": None, "longitude": 10**40}},
        id="huge-integers",
    ),
    pytest.param(
        image("x", media_id="1" * 65),
        {"media_id": None, "media_state": "none"},
        id="media-id-65-digits",
    ),
    pytest.param(
        image("x", media_id=10**80),
        {"media_id": None, "media_state": "none"},
        id="media-id-huge-number",
    ),
]


def column(message: Message, path: str) -> Any:
    """A column of ``message``, or a value inside its raw JSON (``raw.image.caption``)."""
    name, *keys = path.split(".")
    value = getattr(message, name)
    for key in keys:
        value = value[key]
    return value


@pytest.mark.parametrize(("bad", "expected"), POISON_MESSAGES)
def test_unstorable_value_in_a_message_is_cleaned_or_rejected_beside_good_ones(
    web: TestClient, rt: Runtime, business: Business, bad: Any, expected: dict[str, Any] | str
) -> None:
    """NUL, lone surrogates, NaN and huge numbers sink nothing: the good message is stored, the
    poison one stored clean or, when its id or type is then unusable, rejected with the reason."""
    post(web, meta_json(history_with(business, bad)))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    with rt.db.sessionmaker() as session:
        messages = {m.wamid: m for m in session.scalars(select(Message))}
        assert session.scalar(select(HistoryChunk.messages)) == len(messages)
    assert messages["wamid.GOOD"].text_body == "fine"
    if isinstance(expected, str):
        assert list(messages) == ["wamid.GOOD"]
        assert row.summary["history"]["rejected"] == 1
        assert any(expected in r for r in row.summary["history"]["rejected_reasons"])
        return
    poison = messages[expected.get("wamid", "wamid.BAD")]
    for path, value in expected.items():
        assert column(poison, path) == value, path


def test_unstorable_contact_names_are_stored_clean(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A contact's name with NUL and a lone surrogate is stored as a column can hold it."""
    post(web, meta_json(contacts(business, ("add", USER, RECENT, "Ann\x00 Lee\ud800"))))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    with rt.db.sessionmaker() as session:
        contact = session.scalars(select(Contact)).one()
    assert (contact.full_name, contact.first_name) == ("Ann Lee\ufffd", "Ann")


def test_unstorable_echo_is_stored_clean(web: TestClient, rt: Runtime, business: Business) -> None:
    """An echo with NUL in its JSON, NaN and a recipient of 100 digits is stored, threadless."""
    payload = echoes(business, ("wamid.E", USER, RECENT, "hi"))
    echo = payload["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    echo |= {"to": "1" * 100, "type": "image", "image": {"caption": "\x00hi", "width": math.nan}}
    post(web, meta_json(payload))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    with rt.db.sessionmaker() as session:
        message = session.scalars(select(Message)).one()
    assert (message.thread, message.direction, message.text_body) == ("", "outbound", "hi")
    assert message.raw is not None
    assert message.raw["image"] == {"caption": "hi", "width": None}


def test_unstorable_edit_is_applied_clean(web: TestClient, rt: Runtime, business: Business) -> None:
    """An edit whose text has NUL and a lone surrogate is applied without them; its reference
    to the original is cleaned the same way as the original's id was."""
    post(web, history_with(business, text("wamid.\x00OLD", USER, RECENT, "old")))
    edit = {
        "from": USER,
        "id": "wamid.EDIT",
        "timestamp": str(RECENT),
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.OLD\x00",
            "message": {"type": "text", "text": {"body": "new\x00 text\ud800"}},
        },
    }
    post(web, meta_json(envelope(business, "messages", {"messages": [edit]})))
    rows = inbox(rt)
    assert [r.status for r in rows] == [InboxStatus.PROCESSED] * 2, rows[-1].last_error
    assert rows[-1].summary == {"messages": {"edits": 1}}
    with rt.db.sessionmaker() as session:
        edited = session.scalars(select(Message).where(Message.wamid == "wamid.OLD")).one()
    assert edited.text_body == "new text\ufffd"


def test_a_phone_number_id_too_long_for_its_column_routes_by_waba(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A 40-digit phone_number_id is not stored as the routing number; the WABA finds the
    onboarding and the chunk is stored."""
    payload = chunk(business, 1, 1, 10, {USER: [text("wamid.P", USER, RECENT, "x")]})
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "1" * 40
    post(web, meta_json(payload))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert (row.phone_number_id, row.onboarding_id) == (None, business.onboarding_id)
    assert count(rt, Message) == 1


def test_account_update_with_an_entry_time_no_date_holds_is_applied(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An entry time of 10**30 seconds is unknown (the event is applied as received now), and a
    disconnection reason with NUL and a lone surrogate is kept clean."""
    value = {
        "event": "PARTNER_REMOVED",
        "disconnection_info": {"reason": "PRIMARY\x00_INACTIVITY\ud800", "initiated_by": "\x00"},
    }
    post(web, meta_json(envelope(business, "account_update", value, time=10**30)))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        assert onboarding.state == "disconnected"
        assert onboarding.lifecycle_reason == "PRIMARY_INACTIVITY\ufffd"
        assert onboarding.lifecycle_initiated_by is None


def test_nesting_at_the_decoders_limit_is_processed_or_quarantined_never_a_failed_write(
    rt: Runtime, business: Business
) -> None:
    """Around the deepest body the decoder accepts, a message's JSON nested that deep is stored
    or its delivery quarantined as nested too deeply; no delivery fails writing it."""
    limit = deepest_decodable()
    statuses = []
    for depth in range(limit - 60, limit + 5):
        bad = msg(id=f"wamid.D{depth}", type="reaction", text=..., reaction="<nested>")
        raw = meta_json(history_with(business, bad))
        raw = raw.replace(b'"<nested>"', b"[" * depth + b"]" * depth)
        with rt.db.session() as session:
            delivery_id = receive(session, raw).delivery_id
        with rt.db.session() as session:
            status = process_delivery(session, delivery_id, settings=rt.settings).status
            row = session.get_one(InboxDelivery, delivery_id)
            if status == InboxStatus.QUARANTINED:
                assert row.last_error == "body is nested too deeply"
            else:
                assert status == InboxStatus.PROCESSED
                assert session.scalar(select(Message.id).where(Message.wamid == f"wamid.D{depth}"))
        statuses.append(status)
    assert statuses[0] == InboxStatus.PROCESSED
    assert statuses[-1] == InboxStatus.QUARANTINED
