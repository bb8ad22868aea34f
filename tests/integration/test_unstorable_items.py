"""Deliveries carrying what PostgreSQL cannot store, through the real stack.

NUL characters, lone surrogates, NaN, infinities and numbers too large for their columns, in
every kind of item a delivery writes: each delivery is posted signed to the web app and
processed by the real ``ingest`` worker into PostgreSQL. Every storable item is stored (text as
complete as PostgreSQL can hold it), what cannot be stored is counted as rejected with its
reason, and the delivery is processed once: never retried, never quarantined.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig, WebServer, poll_until
from models import Contact, Database, HistoryChunk, InboxDelivery, InboxStatus, Message
from onboarding.payloads import digits
from onboarding.sandbox import Sandbox
from onboarding.webhooks import sign
from tests.integration._flow import finished_signup, start_onboarding
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
    signup = finished_signup(sandbox)
    onboarding_id = start_onboarding(api, signup)
    detail = api.wait_for_onboarding(onboarding_id)
    number = digits(detail["display_phone_number"])
    assert number is not None
    return Business(onboarding_id, signup.waba_id, signup.phone_number_id, number)


def deliver(
    meta: httpx.Client, db: Database, stack_config: StackConfig, payload: dict[str, Any]
) -> InboxDelivery:
    """Post ``payload`` signed, as Meta's JSON carries it; the inbox row once it is settled."""
    raw = meta_json(payload)
    headers = {"X-Hub-Signature-256": sign(raw, stack_config.app_secret)}
    assert meta.post("/webhooks/meta", content=raw, headers=headers).status_code == 200
    digest = hashlib.sha256(raw).hexdigest()

    def row() -> InboxDelivery | None:
        with db.sessions() as session:
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
    with db.sessions() as session:
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
    with db.sessions() as session:
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

    with db.sessions() as session:
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
            "rejected_reasons": ["contact change without phone, timestamp or a known action"],
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
