"""The JSON Meta pushes to coexist's callback, built from generated data.

Each ``*_value`` function builds the ``value`` of one webhook ``field`` for a number (its
``metadata``, :meth:`~.profile.NumberContext.metadata`); :func:`envelope` wraps a value in the
``whatsapp_business_account`` envelope; :func:`contact_add_item` and
:func:`contact_remove_item` build the ``state_sync`` items of ``smb_app_state_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

DECLINED_CODE: Final = 2593109
DECLINED_TITLE: Final = "History sync is turned off by the business from the WhatsApp Business App"


def envelope(waba_id: str, field: str, value: Mapping[str, Any], time: int) -> dict[str, Any]:
    """Wrap a change ``value`` in the ``whatsapp_business_account`` webhook envelope."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "time": time, "changes": [{"field": field, "value": value}]}],
    }


def history_value(
    metadata: Mapping[str, str],
    phase: int,
    chunk_order: int,
    progress: int,
    threads: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The ``value`` of a ``history`` webhook carrying one chunk's threads."""
    return {
        "messaging_product": "whatsapp",
        "metadata": dict(metadata),
        "history": [
            {
                "metadata": {
                    "phase": phase,
                    "chunk_order": chunk_order,
                    "progress": progress,
                },
                "threads": list(threads),
            }
        ],
    }


def followup_value(
    metadata: Mapping[str, str],
    messages: Iterable[dict[str, Any]],
    echoes: Iterable[dict[str, Any]] = (),
    contacts: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``value`` of a ``history`` late media: the users in ``contacts[]``, media they sent
    in ``messages[]``, media the business sent in ``message_echoes[]`` (each only if any)."""
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": dict(metadata)}
    for key, items in (("contacts", contacts), ("messages", messages), ("message_echoes", echoes)):
        listed = list(items)
        if listed:
            value[key] = listed
    return value


def declined_value(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The ``value`` of the ``history`` webhook telling that sharing was declined."""
    return {
        "messaging_product": "whatsapp",
        "metadata": dict(metadata),
        "history": [
            {
                "errors": [
                    {
                        "code": DECLINED_CODE,
                        "title": DECLINED_TITLE,
                        "message": DECLINED_TITLE,
                        "error_data": {"details": "History sharing is turned off by the business"},
                    }
                ]
            }
        ],
    }


def state_sync_value(metadata: Mapping[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``value`` of an ``smb_app_state_sync`` webhook."""
    return {
        "messaging_product": "whatsapp",
        "metadata": dict(metadata),
        "state_sync": items,
    }


def echoes_value(
    metadata: Mapping[str, str],
    items: list[dict[str, Any]],
    contacts: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``value`` of an ``smb_message_echoes`` webhook: ``contacts[]`` (the users written
    to, if known) and ``message_echoes[]``."""
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": dict(metadata)}
    listed = list(contacts)
    if listed:
        value["contacts"] = listed
    value["message_echoes"] = items
    return value


def contact_add_item(
    phone_number: str | None,
    full_name: str | None,
    first_name: str | None,
    timestamp: int,
    ids: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``state_sync`` item adding (or editing) a contact; ``ids`` are its ``user_id``,
    ``parent_user_id``? and ``username``?; ``phone_number`` is omitted when None."""
    contact: dict[str, Any] = {}
    if full_name:
        contact["full_name"] = full_name
    if first_name:
        contact["first_name"] = first_name
    if phone_number is not None:
        contact["phone_number"] = phone_number
    contact.update(ids or {})
    return {
        "type": "contact",
        "contact": contact,
        "action": "add",
        "metadata": {"timestamp": str(timestamp)},
    }


def contact_remove_item(
    phone_number: str | None, timestamp: int, ids: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ``state_sync`` item removing a contact (names omitted, as Meta does)."""
    contact: dict[str, Any] = {}
    if phone_number is not None:
        contact["phone_number"] = phone_number
    contact.update(ids or {})
    return {
        "type": "contact",
        "contact": contact,
        "action": "remove",
        "metadata": {"timestamp": str(timestamp)},
    }
