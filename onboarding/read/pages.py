"""Keyset pages and their cursors.

A cursor is the key of the last row handed out, with the name of the listing it belongs to,
as URL-safe base64 of a small JSON array: opaque to clients (who only hand it back), checked on
the way in (a cursor of another listing, or one this API never made, is refused). Times travel
as integer microseconds since the epoch, so a key compares exactly as stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

#: Which way a listing runs: ``asc`` from the oldest (or smallest) key, ``desc`` from the newest.
Order = Literal["asc", "desc"]
#: The most rows one page holds, and how many a page holds when the client does not say.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_MAX_INT = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Longer than any cursor this module makes; anything longer is refused unread.
_MAX_LENGTH = 256


class CursorError(ValueError):
    """A cursor string this listing did not hand out."""


@dataclass(frozen=True)
class Page:
    """Rows of one listing and the cursor of the next page (None: this was the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def encode(listing: str, *key: int) -> str:
    raw = json.dumps([listing, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(value: str, listing: str, size: int) -> tuple[int, ...]:
    """The ``size`` integers of a cursor :func:`encode` made for ``listing``."""
    refused = CursorError(f"not a cursor of this listing: {value[:40]!r}")
    if not value or len(value) > _MAX_LENGTH:
        raise refused
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError):  # UnicodeError and JSONDecodeError are ValueErrors
        raise refused from None
    if not (isinstance(data, list) and len(data) == size + 1 and data[0] == listing):
        raise refused
    key = data[1:]
    if not all(type(part) is int and -_MAX_INT <= part <= _MAX_INT for part in key):
        raise refused
    return tuple(key)


def micros(value: datetime) -> int:
    """A stored time as a cursor holds it."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def moment(value: int) -> datetime:
    """A cursor's time back as a datetime (:class:`CursorError` outside datetime's range)."""
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise CursorError("not a cursor of this listing: time out of range") from None


def page(rows: list[Any], limit: int, item: Any, key: Any) -> Page:
    """A page from up to ``limit + 1`` rows: the extra row only says another page follows,
    and the cursor is the key of the last row handed out."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([item(row) for row in rows], key(rows[-1]) if more and rows else None)
