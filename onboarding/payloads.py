"""Defensive parsing of Meta's webhook bodies.

Every delivery is ``{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>,
"time"?, "changes": [{"field": ..., "value": {...}}]}]}`` (meta-platform.md §4). The declined
history payload has been seen without the envelope (just the inner ``value``): it is accepted
as one ``history`` change with no WABA id. Anything else is a :class:`PayloadError` whose
message is the reason an operator reads on the quarantined inbox row.

Individual items (messages, contacts) are validated where they are used; a bad item is skipped
and counted, never fatal to the delivery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Earliest plausible message time (WhatsApp did not exist before) and how far in the future a
#: device clock may be trusted.
EARLIEST = 1_230_768_000  # 2009-01-01
FUTURE_SLACK_SECONDS = 86_400
MAX_FIELD_LENGTH = 64


class PayloadError(ValueError):
    """The body cannot be a Meta webhook delivery; the message says why."""


@dataclass(frozen=True, slots=True)
class Change:
    """One ``entry[].changes[]`` item."""

    waba_id: str | None
    field: str
    value: dict[str, Any]
    entry_time: int | None

    @property
    def phone_number_id(self) -> str | None:
        metadata = self.value.get("metadata")
        if isinstance(metadata, dict):
            pnid = metadata.get("phone_number_id")
            if isinstance(pnid, str) and pnid.isascii() and pnid.isdigit():
                return pnid
            if isinstance(pnid, int) and not isinstance(pnid, bool) and pnid > 0:
                return str(pnid)
        return None

    @property
    def business_number(self) -> str | None:
        """The business's number as digits, from ``metadata.display_phone_number``."""
        metadata = self.value.get("metadata")
        if isinstance(metadata, dict):
            return digits(metadata.get("display_phone_number"))
        return None


def digits(value: Any) -> str | None:
    """Only the digits of a phone number (``+1 555-078-3881`` → ``15550783881``)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    out = "".join(ch for ch in value if "0" <= ch <= "9")
    return out or None


def load(body: bytes) -> Any:
    """JSON-decode a body, turning every failure into a :class:`PayloadError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    except ValueError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None


def parse_delivery(body: bytes) -> list[Change]:
    """The changes a delivery carries, or a :class:`PayloadError` saying why it has none."""
    obj = load(body)
    if not isinstance(obj, dict):
        raise PayloadError(f"body is a JSON {type(obj).__name__}, not an object")
    if "entry" not in obj:
        if isinstance(obj.get("history"), list) and "metadata" in obj:
            return [Change(waba_id=None, field="history", value=obj, entry_time=None)]
        raise PayloadError("no 'entry' list and not a bare history value")
    if obj.get("object") != "whatsapp_business_account":
        raise PayloadError(f"'object' is {obj.get('object')!r}, not 'whatsapp_business_account'")
    entries = obj["entry"]
    if not isinstance(entries, list) or not entries:
        raise PayloadError("'entry' is not a non-empty list")
    changes: list[Change] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PayloadError(f"entry[{i}] is not an object")
        waba_id = entry.get("id")
        if isinstance(waba_id, int) and not isinstance(waba_id, bool):
            waba_id = str(waba_id)
        if (
            not isinstance(waba_id, str)
            or not (waba_id.isascii() and waba_id.isdigit())
            or len(waba_id) > 32
        ):
            raise PayloadError(f"entry[{i}].id is not a WABA id")
        entry_time = entry.get("time")
        if not isinstance(entry_time, int) or isinstance(entry_time, bool):
            entry_time = None
        items = entry.get("changes")
        if not isinstance(items, list) or not items:
            raise PayloadError(f"entry[{i}].changes is not a non-empty list")
        for j, change in enumerate(items):
            if not isinstance(change, dict):
                raise PayloadError(f"entry[{i}].changes[{j}] is not an object")
            field = change.get("field")
            if not isinstance(field, str) or not field or len(field) > MAX_FIELD_LENGTH:
                raise PayloadError(f"entry[{i}].changes[{j}].field is missing or not a name")
            value = change.get("value")
            if not isinstance(value, dict):
                raise PayloadError(f"entry[{i}].changes[{j}].value is not an object")
            changes.append(Change(waba_id, field, value, entry_time))
    return changes


def unix_time(value: Any, *, now: float) -> datetime | None:
    """A Meta timestamp (string or int Unix seconds) as UTC, or None if implausible."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        seconds = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        return None
    if seconds < EARLIEST or seconds > now + FUTURE_SLACK_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def clean_text(value: Any, limit: int = 65_536) -> str | None:
    """A text body safe to store: NUL characters removed, bounded length."""
    if not isinstance(value, str):
        return None
    text: str = value.replace("\x00", "") if "\x00" in value else value
    return text[:limit]
