"""/webhooks/meta with bad input: refused, quarantined or items rejected; never half-written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Contact, InboxStatus, Message, Onboarding
from onboarding.meta.payloads import storable_text
from onboarding.meta.signatures import sign
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.badinput.helpers import (
    NOW,
    RECENT,
    USER,
    WABA,
    history_with,
    inbox,
    msg,
    post,
    process,
    stored,
)
from tests.conftest import APP_SECRET, VERIFY_TOKEN
from tests.onboarding.deliveries import (
    Business,
    chunk,
    contacts,
    echoes,
    envelope,
    signed,
    text,
)

# -- signature and size ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        pytest.param(b"not json at all", None, id="garbage-unsigned"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, "sha256=" + "a" * 64, id="deep-forged"),
        pytest.param(b"{}", sign(b"{} ", APP_SECRET), id="signature-of-other-bytes"),
        pytest.param(b"{}", sign(b"{}", "another-secret"), id="wrong-secret"),
        pytest.param(b"{}", ("sha256=" + "é" * 32).encode(), id="utf8-signature-bytes"),
        pytest.param(b"\x00" * 100, "sha512=" + "0" * 64, id="nul-body-wrong-algo"),
    ],
)
def test_bad_signature_is_401_and_stores_nothing(
    web: TestClient, rt: Runtime, raw: bytes, header: str | bytes | None
) -> None:
    """Without a valid signature of the exact bytes the answer is 401 and no row is kept."""
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Hub-Signature-256"] = header
    response = web.post("/webhooks/meta", content=raw, headers=headers)
    assert response.status_code == 401
    assert inbox(rt) == []


def test_oversized_signed_delivery_is_413_and_stores_nothing(web: TestClient, rt: Runtime) -> None:
    """A signed body one byte over webhook_max_body_bytes is 413 and nothing is stored."""
    limit = rt.settings.webhook_max_body_bytes
    raw = b'{"entry":"' + b"x" * (limit - 11) + b'"}'
    assert len(raw) == limit + 1
    _, headers = signed(raw)
    response = web.post("/webhooks/meta", content=raw, headers=headers)
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == limit
    assert inbox(rt) == []


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(
            {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": ""},
            id="empty-challenge",
        ),
        pytest.param(
            {
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1" * 1025,
            },
            id="challenge-too-long",
        ),
        pytest.param(
            {"hub.mode": "SUBSCRIBE", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
            id="mode-uppercase",
        ),
        pytest.param(
            {
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN + "\x00",
                "hub.challenge": "1",
            },
            id="token-with-nul",
        ),
        pytest.param(
            {
                "hub.mode": "subscribe",
                "hub.verify_token": "vé\u0159\u00eff\u00ff",
                "hub.challenge": "1",
            },
            id="unicode-token",
        ),
    ],
)
def test_handshake_with_bad_parameters_is_403(
    web: TestClient, rt: Runtime, params: dict[str, str]
) -> None:
    """Only the exact mode, token and a bounded non-empty challenge get the echo; else 403."""
    assert web.get("/webhooks/meta", params=params).status_code == 403
    assert inbox(rt) == []


# -- quarantine ----------------------------------------------------------------------------

WBA = "whatsapp_business_account"
VALUE = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"}}


def body(entry: Any, obj: Any = WBA) -> bytes:
    return json.dumps({"object": obj, "entry": entry}).encode()


def one_change(change: Any, waba: Any = WABA) -> bytes:
    return body([{"id": waba, "time": RECENT, "changes": [change]}])


QUARANTINED = [
    pytest.param(b"", "not JSON", id="empty"),
    pytest.param(b'{"object": "whatsapp_business_account", "entry": [', "not JSON", id="truncated"),
    pytest.param(b'{"object": "whatsapp\x00"}', "not JSON", id="raw-nul-in-string"),
    pytest.param(b"\xc3\x28", "UTF-8", id="invalid-utf8"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, "nested too deeply", id="10k-nested-lists"),
    pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply", id="10k-objects"),
    pytest.param(b"[]", "JSON list", id="list"),
    pytest.param(b'"hello"', "JSON str", id="string"),
    pytest.param(b"null", "not an object", id="null"),
    pytest.param(b"{}", "no 'entry'", id="empty-object"),
    pytest.param(body([], obj="page"), "'object' is 'page'", id="object-page"),
    pytest.param(body([], obj=None), "'object' is None", id="object-null"),
    pytest.param(body([]), "'entry' is not a non-empty list", id="entry-empty"),
    pytest.param(body({"id": WABA}), "'entry' is not a non-empty list", id="entry-object"),
    pytest.param(body([1]), "entry[0] is not an object", id="entry-int"),
    pytest.param(one_change({}, waba="abc"), "entry[0].id is not a WABA id", id="waba-letters"),
    pytest.param(one_change({}, waba=True), "entry[0].id is not a WABA id", id="waba-bool"),
    pytest.param(one_change({}, waba="1" * 33), "entry[0].id is not a WABA id", id="waba-long"),
    pytest.param(body([{"id": WABA}]), "changes is not a non-empty list", id="no-changes"),
    pytest.param(body([{"id": WABA, "changes": []}]), "non-empty list", id="changes-empty"),
    pytest.param(one_change(5), "changes[0] is not an object", id="change-int"),
    pytest.param(one_change({"value": VALUE}), "field is missing", id="field-missing"),
    pytest.param(one_change({"field": 7, "value": VALUE}), "field is missing", id="field-int"),
    pytest.param(one_change({"field": "", "value": VALUE}), "field is missing", id="field-empty"),
    pytest.param(
        one_change({"field": "f" * 65, "value": VALUE}), "field is missing", id="field-65-chars"
    ),
    pytest.param(
        one_change({"field": "history", "value": [VALUE]}),
        "value is not an object",
        id="value-list",
    ),
    pytest.param(
        one_change({"field": "history", "value": None}), "value is not an object", id="value-null"
    ),
]


@pytest.mark.parametrize(("raw", "reason"), QUARANTINED)
def test_signed_non_delivery_is_quarantined_with_reason(
    web: TestClient, rt: Runtime, business: Business, raw: bytes, reason: str
) -> None:
    """A signed body that is not a Meta delivery is answered 200 and kept quarantined, why noted."""
    before = stored(rt)
    post(web, raw)
    [row] = inbox(rt)
    assert row.status == InboxStatus.QUARANTINED
    assert reason in (row.last_error or ""), row.last_error
    assert row.summary is None
    assert stored(rt) == before


@pytest.mark.parametrize(
    "waba", ["\u0661\u0662\u0663\u0664\u0665", "\u00b9\u00b2\u00b3", "\uff11\uff12\uff13"]
)
def test_non_ascii_digit_waba_id_is_quarantined(web: TestClient, rt: Runtime, waba: str) -> None:
    """A WABA id made of non-ASCII digits is not a Graph id: the delivery is quarantined."""
    post(web, one_change({"field": "history", "value": VALUE}, waba=waba))
    [row] = inbox(rt)
    assert row.status == InboxStatus.QUARANTINED, (row.status, row.last_error)
    assert "WABA id" in (row.last_error or "")


# -- processed, items rejected ---------------------------------------------------------------


BAD_MESSAGES = [
    pytest.param(msg(timestamp=str(-5)), "timestamp", id="ts-negative-string"),
    pytest.param(msg(timestamp=-1_700_000_000), "timestamp", id="ts-negative-int"),
    pytest.param(msg(timestamp=str(NOW + 10 * 86_400)), "timestamp", id="ts-10-days-ahead"),
    pytest.param(msg(timestamp=10**30), "timestamp", id="ts-huge-int"),
    pytest.param(msg(timestamp="9" * 40), "timestamp", id="ts-40-digits"),
    pytest.param(msg(timestamp="0"), "timestamp", id="ts-epoch"),
    pytest.param(msg(timestamp="1.7e9"), "timestamp", id="ts-float-string"),
    pytest.param(msg(timestamp=True), "timestamp", id="ts-bool"),
    pytest.param(msg(timestamp=...), "timestamp", id="ts-missing"),
    pytest.param(msg(id=...), "usable id", id="id-missing"),
    pytest.param(msg(id=123), "usable id", id="id-int"),
    pytest.param(msg(id="w" * 192), "usable id", id="id-192-chars"),
    pytest.param(msg(type=...), "no message type", id="type-missing"),
    pytest.param(msg(type="t" * 33), "no message type", id="type-33-chars"),
    pytest.param(msg(type=["text"]), "no message type", id="type-list"),
    pytest.param("a string, not a message", "not an object", id="message-string"),
    pytest.param(None, "not an object", id="message-null"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_MESSAGES)
def test_bad_history_message_is_rejected_and_the_rest_stored(
    web: TestClient, rt: Runtime, business: Business, bad: Any, reason: str
) -> None:
    """A bad message in a chunk is counted as rejected; its good neighbour is stored alone."""
    messages = count(rt, Message)
    post(web, history_with(business, bad))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary["history"]["rejected"] == 1
    assert any(reason in r for r in row.summary["history"]["rejected_reasons"])
    assert count(rt, Message) == messages + 1
    with rt.db.sessionmaker() as session:
        assert session.scalars(select(Message.wamid)).all() == ["wamid.GOOD"]


def meta(phase: Any, order: Any, progress: Any) -> dict[str, Any]:
    return {"phase": phase, "chunk_order": order, "progress": progress}


BAD_CHUNKS = [
    pytest.param(meta(1, 1, 101), "progress 101", id="progress-101"),
    pytest.param(meta(1, 1, 10**9), "progress", id="progress-huge"),
    pytest.param(meta(1, 1, -1), "progress -1", id="progress-negative"),
    pytest.param(meta(1, 1, "50%"), "progress", id="progress-string"),
    pytest.param(meta(3, 1, 10), "phase 3", id="phase-unknown-3"),
    pytest.param(meta(-1, 1, 10), "phase -1", id="phase-negative"),
    pytest.param(meta("one", 1, 10), "phase", id="phase-string"),
    pytest.param(meta(None, 1, 10), "phase", id="phase-null"),
    pytest.param(meta(1, None, 10), "chunk_order", id="order-null"),
    pytest.param(meta(True, 1, 10), "phase", id="phase-bool"),
    pytest.param(meta("9" * 5_000, 1, 10), "phase", id="phase-5000-digit-string"),
    pytest.param("metadata", "without metadata", id="metadata-string"),
]


@pytest.mark.parametrize(("metadata", "reason"), BAD_CHUNKS)
def test_bad_chunk_metadata_rejects_the_chunk_without_storing_it(
    web: TestClient, rt: Runtime, business: Business, metadata: Any, reason: str
) -> None:
    """A chunk with an unknown phase or progress over 100 is rejected whole, nothing stored."""
    before = stored(rt)
    payload = chunk(business, 1, 1, 10, {USER: [text("wamid.C", USER, RECENT, "x")]})
    payload["entry"][0]["changes"][0]["value"]["history"][0]["metadata"] = metadata
    post(web, payload)
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary["history"]["rejected"] >= 1
    assert any(reason in r for r in row.summary["history"]["rejected_reasons"])
    assert stored(rt) == before


def history_value(business: Business, value: dict[str, Any]) -> dict[str, Any]:
    return envelope(business, "history", value)


BAD_SHAPES = [
    pytest.param({}, "neither 'history' nor 'messages'", id="no-history"),
    pytest.param({"history": {"threads": []}}, "'history' is not a list", id="history-object"),
    pytest.param({"history": ["chunk"]}, "history item is not an object", id="history-item-str"),
    pytest.param({"messages": "x"}, "'messages' is not a list", id="messages-string"),
    pytest.param(
        {"history": [{"metadata": meta(1, 1, 10), "threads": "t"}]},
        "'threads' is not a list",
        id="threads-string",
    ),
    pytest.param(
        {"history": [{"metadata": meta(1, 1, 10), "threads": [{"id": USER, "messages": 5}]}]},
        "thread without a message list",
        id="thread-messages-int",
    ),
]


@pytest.mark.parametrize(("value", "reason"), BAD_SHAPES)
def test_bad_history_shape_is_rejected(
    web: TestClient, rt: Runtime, business: Business, value: dict[str, Any], reason: str
) -> None:
    """A history value of the wrong shape is processed with the problem counted as rejected."""
    before = stored(rt)
    post(web, history_value(business, value))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary["history"]["rejected"] >= 1
    assert any(reason in r for r in row.summary["history"]["rejected_reasons"])
    assert count(rt, Message) == before[0]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        pytest.param(("explode", USER, RECENT, "Ann Lee"), "known action", id="unknown-action"),
        pytest.param(("add", "", RECENT, "Ann Lee"), "phone", id="empty-phone"),
        pytest.param(("add", "1" * 65, RECENT, "Ann Lee"), "phone", id="phone-65-digits"),
        pytest.param(("add", USER, -5, "Ann Lee"), "timestamp", id="negative-ts"),
        pytest.param(("add", USER, NOW + 30 * 86_400, "Ann"), "timestamp", id="future-ts"),
    ],
)
def test_bad_contact_change_is_rejected_and_not_stored(
    web: TestClient, rt: Runtime, business: Business, item: Any, reason: str
) -> None:
    """A contact change without a phone, a plausible time or a known action is rejected."""
    contacts_before = count(rt, Contact)
    post(web, contacts(business, item))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary["smb_app_state_sync"]["rejected"] == 1
    assert any(reason in r for r in row.summary["smb_app_state_sync"]["rejected_reasons"])
    assert count(rt, Contact) == contacts_before


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("smb_app_state_sync", {"state_sync": {}}, "not a list", id="state-sync-obj"),
        pytest.param("smb_message_echoes", {"message_echoes": 1}, "not a list", id="echoes-int"),
    ],
)
def test_wrong_list_types_are_rejected(
    web: TestClient, rt: Runtime, business: Business, field: str, value: Any, reason: str
) -> None:
    """A contacts or echoes value whose list is another type is counted as rejected."""
    before = stored(rt)
    post(web, envelope(business, field, value))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary[field]["rejected"] == 1
    assert any(reason in r for r in row.summary[field]["rejected_reasons"])
    assert stored(rt) == before


def test_echo_from_the_future_is_rejected(web: TestClient, rt: Runtime, business: Business) -> None:
    """An echo stamped a month ahead is counted as rejected and not stored."""
    messages = count(rt, Message)
    post(web, echoes(business, ("wamid.E", USER, NOW + 30 * 86_400, "hi")))
    [row] = inbox(rt)
    assert row.summary is not None
    assert row.summary["smb_message_echoes"]["rejected"] == 1
    assert count(rt, Message) == messages


@pytest.mark.parametrize(
    "field",
    [
        "totally_unknown",
        "message_template_status_update",
        "\u00fcn\u00efcode_field",
        "a\x00b",
        "a\ud800b",
    ],
)
def test_unknown_field_is_processed_as_ignored(
    web: TestClient, rt: Runtime, business: Business, field: str
) -> None:
    """A well-formed change of a field we do not handle is processed and counted as ignored
    (under its name as a column can hold it: without NUL, a lone surrogate as U+FFFD)."""
    before = stored(rt)
    post(web, envelope(business, field, {"anything": [1, 2, 3]}))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary == {storable_text(field): {"ignored": 1}}
    assert row.fields == storable_text(field)
    assert stored(rt) == before


@pytest.mark.parametrize("event", ["SOMETHING_NEW", "partner_removed", "\u00c9" * 10])
def test_unknown_account_event_is_counted_and_changes_nothing(
    web: TestClient, rt: Runtime, business: Business, event: str
) -> None:
    """An account_update with an event we do not know is counted and leaves the state alone."""
    with rt.db.sessionmaker() as session:
        state = session.get_one(Onboarding, business.onboarding_id).state
    post(web, envelope(business, "account_update", {"event": event}, time=2_000_000_000))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary == {"account_update": {"unknown_events": 1}}
    with rt.db.sessionmaker() as session:
        assert session.get_one(Onboarding, business.onboarding_id).state == state


@pytest.mark.parametrize("event", [None, 5, "", "E" * 65])
def test_account_update_without_event_is_rejected(
    web: TestClient, rt: Runtime, business: Business, event: Any
) -> None:
    """An account_update whose event is missing, empty, too long or not a string is rejected."""
    with rt.db.sessionmaker() as session:
        state = session.get_one(Onboarding, business.onboarding_id).state
    post(web, envelope(business, "account_update", {"event": event}))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary is not None
    assert row.summary["account_update"]["rejected"] == 1
    with rt.db.sessionmaker() as session:
        assert session.get_one(Onboarding, business.onboarding_id).state == state


@pytest.mark.parametrize("kind", ["hologram", "request_welcome"])
def test_unknown_message_type_in_messages_field_is_not_stored(
    web: TestClient, rt: Runtime, business: Business, kind: str
) -> None:
    """A `messages` item of a type that is no user message coexist stores is counted as not
    stored, with the reason."""
    before = stored(rt)
    value = {"messages": [{"from": USER, "id": "wamid.U", "timestamp": str(RECENT), "type": kind}]}
    post(web, envelope(business, "messages", value))
    [row] = inbox(rt)
    assert row.status == InboxStatus.PROCESSED, row.last_error
    assert row.summary == {
        "messages": {
            "messages_not_stored": 1,
            "notes": [f"message type {kind!r} is not stored"],
        }
    }
    assert stored(rt) == before


def test_nul_and_unicode_in_text_are_stored_clean(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A text body with NUL characters and astral unicode is stored without the NULs."""
    post(web, chunk(business, 1, 1, 10, {USER: [text("wamid.N", USER, RECENT, "a\x00b 🌵\u202e")]}))
    with rt.db.sessionmaker() as session:
        assert session.scalars(select(Message.text_body)).all() == ["ab 🌵\u202e"]


def with_errors(business: Business, errors: Any, inside: bool) -> dict[str, Any]:
    if inside:
        value = {"messages": [{"id": "wamid.X", "type": "text", "errors": errors}]}
    else:
        value = {"errors": errors}
    return envelope(business, "messages", value)


@pytest.mark.parametrize(
    ("errors", "inside"),
    [
        pytest.param(5, False, id="value-errors-int"),
        pytest.param(True, False, id="value-errors-bool"),
        pytest.param(1.5, False, id="value-errors-float"),
        pytest.param(7, True, id="message-errors-int"),
    ],
)
def test_messages_errors_of_the_wrong_type_do_not_crash(
    rt: Runtime, business: Business, errors: Any, inside: bool
) -> None:
    """A `messages` value whose `errors` is not a list is processed, not a crash."""
    assert process(rt, with_errors(business, errors, inside)) == InboxStatus.PROCESSED
    assert count(rt, Message) == 0


SUPERSCRIPT_TS = "\u00b9\u2077\u2070\u2070\u2070\u2070\u2070\u2070\u2070\u2070"  # ¹⁷⁰⁰⁰⁰⁰⁰⁰⁰


def superscript_chunk(business: Business) -> dict[str, Any]:
    payload = chunk(business, 1, 1, 10, {USER: [text("wamid.G", USER, RECENT, "x")]})
    payload["entry"][0]["changes"][0]["value"]["history"][0]["metadata"]["phase"] = "\u00b2"
    return payload


def superscript_message(business: Business) -> dict[str, Any]:
    bad = text("wamid.S", USER, RECENT, "x") | {"timestamp": SUPERSCRIPT_TS}
    return chunk(business, 1, 1, 10, {USER: [bad]})


def superscript_contact(business: Business) -> dict[str, Any]:
    payload = contacts(business, ("add", USER, RECENT, "Ann Lee"))
    state = payload["entry"][0]["changes"][0]["value"]["state_sync"]
    state[0]["metadata"]["timestamp"] = SUPERSCRIPT_TS
    return payload


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(superscript_message, id="message-timestamp"),
        pytest.param(superscript_chunk, id="chunk-phase"),
        pytest.param(superscript_contact, id="contact-timestamp"),
    ],
)
def test_superscript_digits_are_rejected_not_a_crash(
    rt: Runtime, business: Business, build: Any
) -> None:
    """A timestamp or phase written in superscript digits is counted as rejected."""
    before = stored(rt)
    assert process(rt, build(business)) == InboxStatus.PROCESSED
    [row] = inbox(rt)
    assert row.summary is not None
    assert "rejected" in next(iter(row.summary.values()))
    # No message or contact; a chunk whose messages were all rejected still counts as received.
    assert stored(rt)[:2] == before[:2]
