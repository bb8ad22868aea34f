"""Webhook values naming users by business-scoped user id, in the shapes of
docs/meta.md#business-scoped-user-ids (Meta's example user: Sheena Nelson)."""

from __future__ import annotations

from typing import Any

from tests.onboarding.deliveries import Business, envelope

SHEENA = "US.13491208655302741918"
SHEENA_PARENT = "US.ENT.11815799212886844830"
#: Meta's documented ``contacts[]`` entry of a user who shares no phone number.
SHEENA_CONTACT = {
    "profile": {"name": "Sheena Nelson", "username": "realsheenanelson"},
    "user_id": SHEENA,
    "parent_user_id": SHEENA_PARENT,
}
PABLO = "12125557890"
PABLO_ID = "US.20938475610293847561"
PABLO_NEW_ID = "US.77777777777777777777"


def user_text(
    wamid: str, ts: int, body: str, *, phone: str | None, user_id: str | None
) -> dict[str, Any]:
    """A user's history message: ``from`` only when the number is shared, ``from_user_id``."""
    msg: dict[str, Any] = {
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": body},
        "history_context": {"status": "READ"},
    }
    if phone is not None:
        msg["from"] = phone
    if user_id is not None:
        msg["from_user_id"] = user_id
    return msg


def business_text(
    business: Business, wamid: str, ts: int, body: str, *, phone: str | None, user_id: str | None
) -> dict[str, Any]:
    """A message the business sent: ``to`` only when the number is shared, ``to_user_id``."""
    msg: dict[str, Any] = {
        "from": business.number,
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
    }
    msg["text"] = {"body": body}
    if phone is not None:
        msg["to"] = phone
    if user_id is not None:
        msg["to_user_id"] = user_id
    return msg


def thread(
    messages: list[dict[str, Any]],
    *,
    phone: str | None = None,
    user_id: str | None = None,
    username: str | None = None,
    wa_id: str | None = None,
    parent: str | None = None,
) -> dict[str, Any]:
    """A history thread: ``id`` only when the number is shared, ``context`` with the BSUID."""
    out: dict[str, Any] = {"messages": messages}
    if phone is not None:
        out["id"] = phone
    context = {
        k: v
        for k, v in (
            ("wa_id", wa_id),
            ("user_id", user_id),
            ("parent_user_id", parent),
            ("username", username),
        )
        if v is not None
    }
    if context:
        out["context"] = context
    return out


def history(
    business: Business, phase: int, order: int, progress: int, threads: list[dict[str, Any]]
) -> dict[str, Any]:
    return envelope(
        business,
        "history",
        {
            "history": [
                {
                    "metadata": {"phase": phase, "chunk_order": order, "progress": progress},
                    "threads": threads,
                }
            ]
        },
    )


def app_echoes(
    business: Business, echoes: list[dict[str, Any]], contacts: list[dict[str, Any]]
) -> dict[str, Any]:
    return envelope(
        business, "smb_message_echoes", {"contacts": contacts, "message_echoes": echoes}
    )


def state_contact(
    ts: int,
    *,
    phone: str | None,
    user_id: str,
    name: str | None = None,
    action: str = "add",
    username: str | None = None,
) -> dict[str, Any]:
    contact: dict[str, Any] = {"user_id": user_id}
    if phone is not None:
        contact["phone_number"] = phone
    if name is not None:
        contact |= {"full_name": name, "first_name": name.split()[0]}
    if username is not None:
        contact["username"] = username
    return {
        "type": "contact",
        "contact": contact,
        "action": action,
        "metadata": {"timestamp": str(ts)},
    }


def state_sync(business: Business, *items: dict[str, Any]) -> dict[str, Any]:
    return envelope(business, "smb_app_state_sync", {"state_sync": list(items)})


def user_id_update(
    business: Business, previous: str, current: str, *, wa_id: str | None = None
) -> dict[str, Any]:
    """``user_id_update``: ``user_id.previous``/``.current`` of one user."""
    item: dict[str, Any] = {"user_id": {"previous": previous, "current": current}}
    if wa_id is not None:
        item["wa_id"] = wa_id
    return envelope(business, "user_id_update", {"user_id_update": [item]})


def changed_user_id(wamid: str, ts: int, previous: str, current: str) -> dict[str, Any]:
    """The ``user_changed_user_id`` system message: from the previous BSUID, naming the new."""
    return {
        "from_user_id": previous,
        "id": wamid,
        "timestamp": str(ts),
        "type": "system",
        "system": {
            "body": "User Pablo Morales changed their business-scoped user ID",
            "user_id": current,
            "type": "user_changed_user_id",
        },
    }
