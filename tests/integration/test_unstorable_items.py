"""Deliveries carrying what PostgreSQL cannot store, through the real stack.

NUL characters, lone surrogates, NaN, infinities and numbers too large for their columns, in
every kind of item a delivery writes: each delivery is posted signed to the web app and
processed by the real ``ingest`` worker into PostgreSQL. Every storable item is stored (text as
complete as PostgreSQL can hold it), what cannot be stored is counted as rejected with its
reason, and the delivery is processed once: never retried, never quarantined.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig, WebServer, poll_until
from models import (
    Contact,
    Database,
    HistoryChunk,
    InboxDelivery,
    InboxStatus,
    Message,
    Onboarding,
)
from onboarding.ingest.dispatch import HANDLERS, process_delivery
from onboarding.ingest.inbox import receive
from onboarding.meta.payloads import clean_text, entry_seconds, storable
from onboarding.meta.signatures import sign
from onboarding.sandbox import Sandbox
from tests.integration._flow import onboarded_business
from tests.onboarding.deliveries import (
    HUGE_INTEGER,
    Business,
    chunk,
    contacts,
    echoes,
    envelope,
    meta_json,
    text,
)

pytestmark = pytest.mark.integration

USER = "16505550000"
#: A processed delivery takes well under a second; one that fails is retried for minutes.
PROCESSED_WITHIN = 20.0


def recent() -> int:
    return int(time.time()) - 3 * 86_400


# -- the stack -----------------------------------------------------------------------------


@pytest.fixture
def meta(web: WebServer, ingest_worker: ManagedProcess, sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An HTTP client posting to the web app as Meta does; the ingest worker runs."""
    if not ingest_worker.running:
        pytest.fail(f"{ingest_worker.name} exited:\n{ingest_worker.log_tail()}", pytrace=False)
    sandbox.disable_webhooks()
    with httpx.Client(base_url=web.url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture
def business(api: CoexistApi, sandbox: Sandbox) -> Business:
    """An onboarding through Embedded Signup with both syncs requested (no webhooks sent)."""
    return onboarded_business(api, sandbox)


def deliver(
    meta: httpx.Client, db: Database, stack_config: StackConfig, payload: dict[str, Any]
) -> InboxDelivery:
    """Post ``payload`` signed, as Meta's JSON carries it; the inbox row once it is settled."""
    raw = meta_json(payload)
    headers = {"X-Hub-Signature-256": sign(raw, stack_config.app_secret)}
    assert meta.post("/webhooks/meta", content=raw, headers=headers).status_code == 200
    digest = hashlib.sha256(raw).hexdigest()

    def row() -> InboxDelivery | None:
        with db.sessionmaker() as session:
            query = select(InboxDelivery).where(InboxDelivery.sha256 == digest)
            return session.scalars(query).one_or_none()

    settled = poll_until(
        row,
        lambda r: r is not None and r.status != InboxStatus.PENDING,
        what="the delivery processed",
        timeout=PROCESSED_WITHIN,
    )
    assert settled is not None
    assert settled.status == InboxStatus.PROCESSED, settled.last_error
    assert (settled.attempts, settled.last_error) == (1, None)  # never retried
    return settled


def raw(message: Message, key: str) -> Any:
    """One key of the message's stored JSON."""
    assert message.raw is not None
    return message.raw[key]


def messages(db: Database) -> dict[str, Message]:
    with db.sessionmaker() as session:
        return {m.wamid: m for m in session.scalars(select(Message))}


# -- history -------------------------------------------------------------------------------


def poison(wamid: str, **fields: Any) -> dict[str, Any]:
    """A message of another type than text, with ``fields`` replacing the text's."""
    message = text(wamid, USER, recent(), "unused")
    del message["text"]
    return message | fields


def image(wamid: str, caption: str, **media: Any) -> dict[str, Any]:
    """An image without a usable media id, so that no download is attempted."""
    return poison(wamid, type="image", image={"caption": caption, **media})


def location(wamid: str, **fields: Any) -> dict[str, Any]:
    return poison(wamid, type="location", location={"name": "Shop", **fields})


def test_a_chunk_with_one_poison_message_of_each_kind_stores_every_good_message(
    meta: httpx.Client, db: Database, stack_config: StackConfig, business: Business
) -> None:
    """Beside good messages, a poison message of each kind is stored clean, or rejected with
    its reason when its id or type is unusable once cleaned; the chunk reaches the ledger."""
    goods = [text(f"wamid.GOOD{i}", USER, recent(), f"fine {i} \U0001f335") for i in range(4)]
    bad = [
        image("wamid.CAPTION_NUL", "a\x00b"),
        poison(
            "wamid.JSON_NUL",
            type="reaction",
            reaction={"emo\x00ji": "\x00\U0001f44d", "message_id": "wamid.GOOD0"},
        ),
        poison("\x00", type="reaction", reaction={"emoji": "x"}),
        poison("wamid.TYPE_NUL", type="\x00", reaction={"emoji": "x"}),
        text("wamid.STATUS_NUL", USER, recent(), "ok", status="RE\x00AD"),
        text("wamid.TEXT_SURROGATE", USER, recent(), "\ud83d hi \udc00"),
        image("wamid.CAPTION_SURROGATE", "\udfff"),
        text("wamid.ID_SURROGATE\ud800", USER, recent(), "ok"),
        location("wamid.NAN", latitude=math.nan, longitude=-math.inf),
        location("wamid.HUGE", latitude=HUGE_INTEGER, longitude=10**40),
        image("wamid.MEDIA_ID", "x", id="1" * 65),
    ]
    row = deliver(
        meta, db, stack_config, chunk(business, 1, 1, 10, {USER: goods[:2] + bad + goods[2:]})
    )

    stored = messages(db)
    for good in goods:
        assert stored[good["id"]].text_body == good["text"]["body"]
    assert stored["wamid.CAPTION_NUL"].text_body == "ab"
    assert raw(stored["wamid.CAPTION_NUL"], "image") == {"caption": "ab"}
    assert raw(stored["wamid.JSON_NUL"], "reaction") == {
        "emoji": "\U0001f44d",
        "message_id": "wamid.GOOD0",
    }
    assert stored["wamid.STATUS_NUL"].status == "READ"
    assert stored["wamid.TEXT_SURROGATE"].text_body == "\ufffd hi \ufffd"
    assert stored["wamid.CAPTION_SURROGATE"].text_body == "\ufffd"
    assert stored["wamid.ID_SURROGATE\ufffd"].text_body == "ok"
    assert raw(stored["wamid.NAN"], "location") == {
        "name": "Shop",
        "latitude": None,
        "longitude": None,
    }
    assert raw(stored["wamid.HUGE"], "location") == {
        "name": "Shop",
        "latitude": None,
        "longitude": 10**40,
    }
    assert (stored["wamid.MEDIA_ID"].media_id, stored["wamid.MEDIA_ID"].media_state) == (
        None,
        "none",
    )
    assert len(stored) == len(goods) + len(bad) - 2
    assert row.summary is not None
    summary = row.summary["history"]
    assert (summary["messages"], summary["rejected"], summary["chunks"]) == (len(stored), 2, 1)
    assert sorted(summary["rejected_reasons"]) == [
        "message without a usable id",
        "wamid.TYPE_NUL: no message type",
    ]
    with db.sessionmaker() as session:
        ledger = session.scalars(select(HistoryChunk)).one()
    assert (ledger.phase, ledger.chunk_order, ledger.messages) == (1, 1, len(stored))


# -- contacts, echoes, edits, routing --------------------------------------------------------


def test_contacts_with_unstorable_names_are_stored_clean_beside_good_ones(
    meta: httpx.Client, db: Database, stack_config: StackConfig, business: Business
) -> None:
    """Names with NUL and lone surrogates are stored clean; a 65-digit phone is rejected."""
    row = deliver(
        meta,
        db,
        stack_config,
        contacts(
            business,
            ("add", "16505551111", recent(), "Ann Lee"),
            ("add", "16505552222", recent(), "Bo\x00b Ray\ud800"),
            ("add", "1" * 65, recent(), "Too Long"),
            ("add", "16505553333", recent(), "\udc00 Cy"),
        ),
    )

    with db.sessionmaker() as session:
        names = {c.phone: (c.full_name, c.first_name) for c in session.scalars(select(Contact))}
    assert names == {
        "16505551111": ("Ann Lee", "Ann"),
        "16505552222": ("Bob Ray\ufffd", "Bob"),
        "16505553333": ("\ufffd Cy", "\ufffd"),
    }
    assert row.summary == {
        "smb_app_state_sync": {
            "contacts_added": 3,
            "rejected": 1,
            "rejected_reasons": [
                "contact change without phone or user_id, timestamp or a known action"
            ],
        }
    }


def test_echoes_with_unstorable_values_are_stored_clean_beside_good_ones(
    meta: httpx.Client, db: Database, stack_config: StackConfig, business: Business
) -> None:
    """An echo with NUL in its JSON, NaN, a lone surrogate and a 100-digit recipient is stored
    beside a good echo; an echo whose id is only NUL is rejected."""
    payload = echoes(
        business,
        ("wamid.ECHO_GOOD", USER, recent(), "hello"),
        ("wamid.ECHO_BAD", USER, recent(), "unused"),
        ("\x00", USER, recent(), "no id"),
    )
    bad = payload["entry"][0]["changes"][0]["value"]["message_echoes"][1]
    del bad["text"]
    bad |= {
        "to": "1" * 100,
        "type": "image",
        "image": {"caption": "\x00see \ud800", "width": math.nan, "id": 10**70},
    }
    row = deliver(meta, db, stack_config, payload)

    stored = messages(db)
    assert stored["wamid.ECHO_GOOD"].text_body == "hello"
    echo = stored["wamid.ECHO_BAD"]
    assert (echo.thread, echo.direction, echo.source) == ("", "outbound", "app_echo")
    assert echo.text_body == "see \ufffd"
    assert echo.raw is not None
    assert echo.raw["image"] == {"caption": "see \ufffd", "width": None, "id": 10**70}
    assert echo.media_id is None
    assert row.summary is not None
    assert row.summary["smb_message_echoes"]["app_echoes"] == 2
    assert row.summary["smb_message_echoes"]["rejected"] == 1


def test_an_edit_with_unstorable_text_is_applied_clean(
    meta: httpx.Client, db: Database, stack_config: StackConfig, business: Business
) -> None:
    """An edit's new text keeps everything PostgreSQL can hold: NUL removed, U+FFFD for a lone
    surrogate."""
    deliver(
        meta,
        db,
        stack_config,
        chunk(business, 1, 1, 10, {USER: [text("wamid.E", USER, recent(), "old")]}),
    )
    edit = {
        "from": USER,
        "id": "wamid.EDIT",
        "timestamp": str(recent()),
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.E",
            "message": {"type": "text", "text": {"body": "new\x00 text \ud83d"}},
        },
    }
    row = deliver(meta, db, stack_config, envelope(business, "messages", {"messages": [edit]}))

    assert row.summary == {"messages": {"edits": 1}}
    assert messages(db)["wamid.E"].text_body == "new text \ufffd"


def test_unstorable_routing_values_do_not_stop_the_delivery(
    meta: httpx.Client, db: Database, stack_config: StackConfig, business: Business
) -> None:
    """A 40-digit phone_number_id and a field name with NUL and a lone surrogate fill the inbox
    row's routing columns as they can hold them; the WABA finds the onboarding."""
    payload = chunk(business, 1, 1, 10, {USER: [text("wamid.R", USER, recent(), "routed")]})
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = "1" * 40
    payload["entry"][0]["changes"].append({"field": "x\x00\ud800", "value": {"a": math.nan}})
    row = deliver(meta, db, stack_config, payload)

    assert (row.fields, row.phone_number_id) == ("history,x\ufffd", None)
    assert row.onboarding_id == business.onboarding_id
    assert row.summary is not None
    assert row.summary["x\ufffd"] == {"ignored": 1}
    assert messages(db)["wamid.R"].text_body == "routed"


# -- properties: whatever a signed delivery carries -------------------------------------------

SETTINGS = StackConfig().settings("http://127.0.0.1:9")
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Unique ids and chunk orders across the examples of a test, which share one onboarding.
SERIAL = itertools.count(1)

anything = st.characters(blacklist_categories=()) | st.sampled_from(
    ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\\", '"', "\U0001f335"]
)
texts = st.text(anything, max_size=20)
numbers = (
    st.integers()
    | st.integers(min_value=2**63, max_value=10**100)
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf, HUGE_INTEGER])
)
digit_strings = st.text(st.sampled_from("0123456789"), min_size=1, max_size=80)
scalars = st.none() | st.booleans() | numbers | texts | digit_strings
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=10,
)
extras = st.dictionaries(texts, values, max_size=3)
KINDS = ["text", "image", "document", "sticker", "reaction", "location", "media_placeholder", "x"]


@st.composite
def good_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A history message with a usable timestamp and type (the test gives it its id) and
    anything in every other field, including extra keys."""
    kind = draw(st.sampled_from(KINDS))
    sent = recent() - draw(st.integers(0, 86_400))
    message = draw(extras) | {
        "from": draw(st.just(USER) | scalars),
        "to": draw(scalars),
        "timestamp": draw(st.sampled_from([str(sent), sent])),
        "type": kind,
        "history_context": draw(extras) | {"status": draw(scalars)},
    }
    if kind == "text":
        message["text"] = draw(extras) | {"body": draw(texts)}
    elif kind in ("image", "document", "sticker"):
        caption = {"caption": draw(texts), "mime_type": draw(scalars), "sha256": draw(scalars)}
        message[kind] = draw(extras) | caption
    elif kind != "media_placeholder":
        message[kind] = draw(values)
    return message


#: Anything at all where a message is expected, or a message-like object with any id, type
#: and timestamp.
poison_messages = values | st.builds(
    lambda fields, rest: rest | fields,
    st.fixed_dictionaries(
        {"id": scalars, "type": scalars | st.sampled_from(KINDS), "timestamp": scalars},
        optional={"from": scalars, "text": values, "image": values},
    ),
    extras,
)


def expected_json(value: Any) -> Any:
    """``value`` as stored: a 5,000-digit integer is null, everything else :func:`storable`."""
    if value == HUGE_INTEGER:
        return None
    if isinstance(value, dict):
        return storable({key: expected_json(item) for key, item in value.items()})
    if isinstance(value, list):
        return [expected_json(item) for item in value]
    return storable(value)


def same_json(stored: Any, expected: Any) -> bool:
    """Equal as JSON: numbers by value (JSONB's numeric may read a float back as an integer)."""
    if isinstance(expected, dict):
        return (
            isinstance(stored, dict)
            and stored.keys() == expected.keys()
            and all(same_json(stored[key], expected[key]) for key in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(expected)
            and all(same_json(a, b) for a, b in zip(stored, expected, strict=True))
        )
    if isinstance(expected, float) and not isinstance(stored, bool):
        return isinstance(stored, int | float) and float(stored) == expected
    return type(stored) is type(expected) and stored == expected


def process(db: Database, payload: dict[str, Any]) -> InboxDelivery:
    """Store ``payload`` as the receiver does and process it as the ingest task does."""
    with db.sessionmaker() as session:
        delivery_id = receive(session, meta_json(payload)).delivery_id
    with db.sessionmaker() as session:
        outcome = process_delivery(session, delivery_id, settings=SETTINGS)
        row = session.get_one(InboxDelivery, delivery_id)
    assert outcome.status == InboxStatus.PROCESSED, row.last_error
    assert (row.attempts, row.last_error) == (1, None)
    return row


@PROPERTY
@given(
    goods=st.lists(good_messages(), min_size=1, max_size=4),
    poisons=st.lists(poison_messages, max_size=4),
    poison_threads=st.lists(st.tuples(scalars, st.lists(poison_messages, max_size=2)), max_size=2),
    phase=st.integers(0, 2),
    as_strings=st.booleans(),
    progress=st.integers(0, 100),
    number=st.sampled_from([None]) | scalars,
    phone_number_id=st.sampled_from([None]) | scalars,
    metadata=extras,
    value=extras,
    data=st.data(),
)
def test_any_history_chunk_stores_its_good_messages_and_reaches_the_ledger(
    db: Database,
    business: Business,
    goods: list[dict[str, Any]],
    poisons: list[Any],
    poison_threads: list[tuple[Any, list[Any]]],
    phase: int,
    as_strings: bool,
    progress: int,
    number: Any,
    phone_number_id: Any,
    metadata: dict[str, Any],
    value: dict[str, Any],
    data: st.DataObject,
) -> None:
    """Arbitrary Unicode (NUL, lone surrogates), NaN, infinities and huge numbers in every
    field of a history chunk: every good message is stored with all the text PostgreSQL can
    hold, and the chunk reaches the ledger."""
    serial = next(SERIAL)
    wamids = [f"wamid.P{serial}.{i}" for i in range(len(goods))]
    goods = [message | {"id": wamid} for message, wamid in zip(goods, wamids, strict=True)]
    mixed = data.draw(st.permutations(goods + poisons))
    payload = chunk(business, phase, serial, progress, {USER: mixed})
    change = payload["entry"][0]["changes"][0]
    item = change["value"]["history"][0]
    item["threads"] += [{"id": tid, "messages": msgs} for tid, msgs in poison_threads]
    item["metadata"] = metadata | {
        "phase": str(phase) if as_strings else phase,
        "chunk_order": str(serial) if as_strings else serial,
        "progress": progress,
    }
    change["value"] = value | change["value"]
    if number is not None:
        change["value"]["metadata"]["display_phone_number"] = number
    if phone_number_id is not None:
        change["value"]["metadata"]["phone_number_id"] = phone_number_id

    row = process(db, payload)

    with db.sessionmaker() as session:
        stored = {
            m.wamid: m for m in session.scalars(select(Message).where(Message.wamid.in_(wamids)))
        }
        ledger = session.scalars(
            select(HistoryChunk).where(
                HistoryChunk.phase == phase, HistoryChunk.chunk_order == serial
            )
        ).one()
    assert sorted(stored) == sorted(wamids), row.summary
    for good in goods:
        message = stored[good["id"]]
        if good["type"] == "text":
            assert message.text_body == clean_text(good["text"]["body"])
        elif good["type"] != "media_placeholder":
            assert same_json(message.raw, expected_json(good)), (message.raw, good)
    assert ledger.messages >= len(goods)
    assert row.onboarding_id == business.onboarding_id


#: Names of fields coexist does not handle, as a change can carry them (not empty once clean).
field_names = texts.filter(lambda name: 0 < len(storable(name)) <= 64).filter(
    lambda name: storable(name) not in HANDLERS
)
poison_items = values | st.builds(
    lambda fields, rest: rest | fields,
    st.fixed_dictionaries(
        {"type": scalars | st.just("contact"), "action": scalars | st.just("add")},
        optional={"contact": values, "metadata": values},
    ),
    extras,
)


@PROPERTY
@given(
    names=st.tuples(texts, texts),
    contact_extras=st.tuples(extras, extras, extras),
    poison_contacts=st.lists(poison_items, max_size=3),
    echo_body=texts,
    echo_extras=extras,
    poison_echoes=st.lists(poison_messages, max_size=3),
    edited=texts,
    poison_events=st.lists(values, max_size=3),
    event=extras,
    entry_time=scalars,
    other_field=field_names,
    other_value=extras,
)
def test_any_contacts_echoes_edits_and_events_store_their_good_items(
    db: Database,
    business: Business,
    names: tuple[str, str],
    contact_extras: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    poison_contacts: list[Any],
    echo_body: str,
    echo_extras: dict[str, Any],
    poison_echoes: list[Any],
    edited: str,
    poison_events: list[Any],
    event: dict[str, Any],
    entry_time: Any,
    other_field: str,
    other_value: dict[str, Any],
) -> None:
    """The same for every other field that writes rows, in one delivery: a contact with any
    names, an echo and an edit of it with any text, an account event and an unknown field with
    anything, each beside poison items."""
    serial = next(SERIAL)
    phone, wamid = f"1650{serial:07d}", f"wamid.E{serial}"
    item_extras, contact_fields, metadata = contact_extras
    contact = item_extras | {
        "type": "contact",
        "action": "add",
        "contact": contact_fields | {"phone_number": phone, "full_name": names[0]},
        "metadata": metadata | {"timestamp": str(recent())},
    }
    contact["contact"]["first_name"] = names[1]
    echo = echo_extras | {
        "from": business.number,
        "to": USER,
        "id": wamid,
        "timestamp": str(recent()),
        "type": "text",
        "text": {"body": echo_body},
    }
    edit = {
        "from": USER,
        "id": f"wamid.ED{serial}",
        "timestamp": str(recent()),
        "type": "edit",
        "edit": {
            "original_message_id": wamid,
            "message": {"type": "text", "text": {"body": edited}},
        },
    }
    changes = [
        ("smb_app_state_sync", {"state_sync": [*poison_contacts, contact]}),
        ("smb_message_echoes", {"message_echoes": [*poison_echoes, echo]}),
        ("messages", {"messages": [*poison_events, edit]}),
        ("account_update", event | {"event": f"UNKNOWN_{serial}"}),
        (other_field, other_value),
    ]
    payload = envelope(business, *changes[0], time=entry_time)
    for field, value in changes[1:]:
        payload["entry"][0]["changes"].append({"field": field, "value": value})

    row = process(db, payload)

    with db.sessionmaker() as session:
        signed_up = session.get_one(Onboarding, business.onboarding_id).signup_completed_at
        stored_contact = session.scalars(select(Contact).where(Contact.phone == phone)).one()
        message = session.scalars(select(Message).where(Message.wamid == wamid)).one()
    assert stored_contact.full_name == clean_text(names[0], 512)
    assert stored_contact.first_name == clean_text(names[1], 256)
    assert (message.source, message.direction) == ("app_echo", "outbound")
    assert message.text_body == clean_text(edited)
    assert message.edited_at is not None
    assert row.summary is not None
    dated = entry_seconds(entry_time)
    if dated is not None and datetime.fromtimestamp(dated, tz=UTC) < signed_up:
        assert row.summary["account_update"]["stale_events"] == 1  # about an earlier signup
    else:
        assert row.summary["account_update"] == {"unknown_events": 1}
    assert row.summary[storable(other_field)] == {"ignored": 1}
