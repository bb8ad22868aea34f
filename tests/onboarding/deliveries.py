"""Builders for Meta webhook deliveries in the shapes of docs/meta.md#4-webhook-payloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from onboarding.meta.payloads import PayloadError, load
from onboarding.meta.signatures import sign
from tests.conftest import APP_SECRET

DECLINED_TEXT = "History sync is turned off by the business from the WhatsApp Business App"


@dataclass(frozen=True)
class Business:
    onboarding_id: int
    waba_id: str
    phone_number_id: str
    number: str  # digits


def envelope(
    business: Business, field: str, value: dict[str, Any], time: int = 1_700_000_000
) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": business.number,
            "phone_number_id": business.phone_number_id,
        },
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": business.waba_id, "time": time, "changes": [{"field": field, "value": value}]}
        ],
    }


def text(
    wamid: str, sender: str, ts: int, body: str, to: str | None = None, status: str = "READ"
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": body},
        "history_context": {"status": status},
    }
    if to:
        msg["to"] = to
    return msg


def placeholder(wamid: str, sender: str, ts: int) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts),
        "type": "media_placeholder",
        "history_context": {"status": "DELIVERED"},
    }


def chunk(
    business: Business,
    phase: int,
    order: int,
    progress: int,
    threads: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    return envelope(
        business,
        "history",
        {
            "history": [
                {
                    "metadata": {"phase": phase, "chunk_order": order, "progress": progress},
                    "threads": [{"id": tid, "messages": msgs} for tid, msgs in threads.items()],
                }
            ]
        },
    )


def media_followup(
    business: Business,
    wamid: str,
    sender: str,
    ts: int,
    media_id: str,
    sha256: str = "",
    mime: str = "image/jpeg",
) -> dict[str, Any]:
    return envelope(
        business,
        "history",
        {
            "messages": [
                {
                    "from": sender,
                    "id": wamid,
                    "timestamp": str(ts),
                    "type": "image",
                    "image": {
                        "caption": "Invoice",
                        "mime_type": mime,
                        "sha256": sha256,
                        "id": media_id,
                    },
                }
            ]
        },
    )


def contacts(business: Business, *items: tuple[str, str, int, str | None]) -> dict[str, Any]:
    """Items are (action, phone, timestamp, full_name)."""
    state = []
    for action, phone, ts, name in items:
        contact: dict[str, Any] = {"phone_number": phone}
        if name:
            contact |= {"full_name": name, "first_name": name.split()[0]}
        state.append(
            {
                "type": "contact",
                "contact": contact,
                "action": action,
                "metadata": {"timestamp": str(ts)},
            }
        )
    return envelope(business, "smb_app_state_sync", {"state_sync": state})


def echoes(business: Business, *items: tuple[str, str, int, str]) -> dict[str, Any]:
    """Items are (wamid, to, timestamp, body)."""
    return envelope(
        business,
        "smb_message_echoes",
        {
            "message_echoes": [
                {
                    "from": business.number,
                    "to": to,
                    "id": wamid,
                    "timestamp": str(ts),
                    "type": "text",
                    "text": {"body": body},
                }
                for wamid, to, ts, body in items
            ]
        },
    )


def declined_value(business: Business) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": business.number,
            "phone_number_id": business.phone_number_id,
        },
        "history": [
            {
                "errors": [
                    {
                        "code": 2593109,
                        "title": DECLINED_TEXT,
                        "message": DECLINED_TEXT,
                        "error_data": {"details": "History sharing is turned off by the business"},
                    }
                ]
            }
        ],
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


#: Stands, in a payload given to :func:`meta_json`, for an integer of 5,000 digits (more than
#: Python reads by default, so no Python value can carry it).
HUGE_INTEGER = "<a 5,000-digit integer>"


def meta_json(payload: dict[str, Any]) -> bytes:
    """``payload`` as JSON a signed delivery may carry: NaN and infinities as bare words, lone
    surrogates as ``\\udXXX`` escapes, :data:`HUGE_INTEGER` as 5,000 digits."""
    raw = json.dumps(payload, allow_nan=True).encode("utf-8", "surrogatepass")
    return raw.replace(json.dumps(HUGE_INTEGER).encode(), b"9" * 5_000)


def deepest_decodable() -> int:
    """How deeply nested a list the decoder accepts, called from the caller's stack."""
    low, high = 1, 5_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            load(b"[" * middle + b"]" * middle)
        except PayloadError:
            high = middle - 1
        else:
            low = middle
    return low


def signed(payload: dict[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
    raw = payload if isinstance(payload, bytes) else body_of(payload)
    return raw, {"X-Hub-Signature-256": sign(raw, APP_SECRET), "Content-Type": "application/json"}


def edit(
    wamid: str, sender: str, ts: int, original: str, body: str, to: str | None = None
) -> dict[str, Any]:
    """An edit item as Meta sends it in ``messages`` (users) and ``message_echoes`` (business)."""
    item: dict[str, Any] = {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts),
        "type": "edit",
        "edit": {
            "original_message_id": original,
            "message": {"type": "text", "text": {"body": body}},
        },
    }
    if to:
        item["to"] = to
    return item


def revoke(
    wamid: str, sender: str, ts: int, original: str, to: str | None = None
) -> dict[str, Any]:
    """A revoke item as Meta sends it in ``messages`` (users) and ``message_echoes`` (business)."""
    item: dict[str, Any] = {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts),
        "type": "revoke",
        "revoke": {"original_message_id": original},
    }
    if to:
        item["to"] = to
    return item


def echo_items(business: Business, *items: dict[str, Any]) -> dict[str, Any]:
    """An ``smb_message_echoes`` delivery of these items as they are."""
    return envelope(business, "smb_message_echoes", {"message_echoes": list(items)})


def user_events(business: Business, *items: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` delivery of these items as they are."""
    return envelope(business, "messages", {"messages": list(items)})
