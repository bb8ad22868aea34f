"""Defensive parsing of Meta's webhook bodies.

Every delivery is ``{"object": "whatsapp_business_account", "entry": [{"id": <WABA id>, "time"?,
"changes": [{"field": ..., "value": {...}}]}]}`` (docs/meta.md#41-the-envelope). The declined
history payload has been seen without the envelope (just the inner ``value``): it is accepted as
one ``history`` change with no WABA id. Anything else is a :class:`PayloadError` whose message
is the reason an operator reads on the quarantined inbox row.

Individual items (messages, contacts) are validated where they are used; a bad item is skipped
and counted, never fatal to the delivery.

**Everything read from a delivery can be stored.** :func:`load` is the one place the worker
turns bytes into values, and what it returns holds nothing PostgreSQL refuses, whatever a
signed body carries (:func:`storable`):

* no string holds NUL: it is removed (text columns cannot hold it, nor can JSONB);
* no string holds a lone surrogate (``\\ud800`` without its pair, which UTF-8 cannot encode): it
  is replaced by U+FFFD; an escaped pair is the one character it encodes;
* no number is NaN or ±Infinity, which JSONB refuses: they are null, as are floats too large
  for a double and integers too long for Python to read (over 4,300 digits). Other integers
  are kept exactly (JSONB's numeric holds them); none reaches a column without a range check.

The rule covers keys as well as values, and identifiers like any other string: a wamid, type
or timestamp is validated after cleaning, and an item whose key field is then unusable (empty,
too long, not digits) is rejected with its reason. Digit strings longer than their columns
are not ids or phone numbers. Only a body with an escape that can decode to NUL or a lone
surrogate is walked; NaN and overlong numbers are handled by the decoder itself.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Earliest plausible message time (WhatsApp did not exist before) and how far in the future a
#: device clock may be trusted.
EARLIEST = 1_230_768_000  # 2009-01-01
FUTURE_SLACK_SECONDS = 86_400
MAX_FIELD_LENGTH = 64
#: The longest phone_number_id kept (its column's size, as for WABA ids).
MAX_ID_DIGITS = 32
#: The longest digit string taken for a phone number or thread (their columns' size).
MAX_PHONE_DIGITS = 64
#: The last second a timestamp can name (9999-12-31T23:59:59Z).
LATEST = 253_402_300_799
#: Calls left free below the JSON decoder. Python bounds nesting by its call stack, and a
#: stored value is walked (:func:`storable`) and encoded again for JSONB deeper in the stack
#: than it was decoded: a body that decodes with this much to spare can be, and one that needs
#: it is "nested too deeply" at once instead of failing every write of its delivery.
DECODING_HEADROOM = 200

#: Candidates for a JSON escape that decodes to NUL or to a lone surrogate: ``\\u0000``, a high
#: surrogate not followed by a low one, a low one not preceded by a high one, and (group
#: ``after``) a low one after a high one that may be escaped text. A pair is one character.
#: The pattern starts with a literal, so the scan of a body without a candidate is fast.
_RISKY_ESCAPE = re.compile(
    rb"\\u(?:0000"
    rb"|[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(?P<after>(?<=\\\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F][0-9a-fA-F]{2}))"
)
BACKSLASH = 0x5C
#: A business-scoped user id or a parent one (``US.13491208655302741918``,
#: ``US.ENT.11815799212886844830``): ISO country code, ``.``, [``ENT.``], up to 128
#: alphanumerics (docs/meta.md#111-business-scoped-user-ids-and-usernames).
BSUID_PATTERN = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


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
            if isinstance(pnid, int) and not isinstance(pnid, bool) and pnid > 0:
                pnid = str(pnid)
            if (
                isinstance(pnid, str)
                and pnid.isascii()
                and pnid.isdigit()
                and len(pnid) <= MAX_ID_DIGITS
            ):
                return pnid
        return None

    @property
    def business_number(self) -> str | None:
        """The business's number as digits, from ``metadata.display_phone_number``."""
        metadata = self.value.get("metadata")
        if isinstance(metadata, dict):
            return digits(metadata.get("display_phone_number"))
        return None


def is_bsuid(value: object) -> bool:
    """Whether ``value`` is shaped like a BSUID or a parent BSUID (:data:`BSUID_PATTERN`)."""
    return isinstance(value, str) and BSUID_PATTERN.fullmatch(value) is not None


def digits(value: Any) -> str | None:
    """Only the digits of a phone number (``+1 555-078-3881`` → ``15550783881``); None if there
    are none or more than :data:`MAX_PHONE_DIGITS`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    if not (value.isascii() and value.isdigit()):
        value = "".join(ch for ch in value if "0" <= ch <= "9")
    return value if 0 < len(value) <= MAX_PHONE_DIGITS else None


def load(body: bytes) -> Any:
    """JSON-decode a body into storable values (:func:`storable`); every failure is a
    :class:`PayloadError`.

    NaN, ±Infinity and floats beyond a double decode to None at once. An integer too long for
    Python (over 4,300 digits) fails the first decoding, and the second reads such integers as
    None. Only a body with an escape of NUL or of a lone surrogate is walked and cleaned, so a
    body without one costs a scan of its bytes. Decoding leaves :data:`DECODING_HEADROOM` calls
    free, so a body nested too deeply is refused here rather than failing its writes.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = _below(DECODING_HEADROOM, text)
        return storable(value) if _has_risky_escape(body) else value
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    except ValueError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None


def _below(calls: int, text: str) -> Any:
    """:func:`_decode`, ``calls`` calls deeper in the stack than this one."""
    return _below(calls - 1, text) if calls else _decode(text)


def _decode(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
    return _LENIENT_DECODER.decode(text)  # an integer over Python's 4,300 digits


def _no_number(_: str) -> None:
    return None


def _finite(literal: str) -> float | None:
    number = float(literal)
    return number if math.isfinite(number) else None


def _integer(literal: str) -> int | None:
    try:
        return int(literal)
    except ValueError:
        return None


#: NaN, ±Infinity and floats beyond a double decode to None; so do, on the second decoding,
#: integers too long for Python.
_DECODER = json.JSONDecoder(parse_constant=_no_number, parse_float=_finite)
_LENIENT_DECODER = json.JSONDecoder(
    parse_constant=_no_number, parse_float=_finite, parse_int=_integer
)


def _has_risky_escape(body: bytes) -> bool:
    """Whether ``body`` has an escape that decodes to NUL or to a lone surrogate."""
    if b"\\u" not in body:
        return False
    for match in _RISKY_ESCAPE.finditer(body):
        if _escaped(body, match.start()):
            continue  # backslash-u written as text
        if match["after"] is None or _escaped(body, match.start() - 6):
            return True
    return False


def _escaped(body: bytes, at: int) -> bool:
    """Whether the backslash at ``at`` is text: it ends an odd run of backslashes."""
    start = at
    while start and body[start - 1] == BACKSLASH:
        start -= 1
    return (at - start) % 2 == 1


def storable(value: Any) -> Any:
    """A decoded JSON value as PostgreSQL can store it, in text columns and JSONB alike.

    Strings (keys too) go through :func:`storable_text`; NaN and ±Infinity become None;
    everything else is kept. Where two keys of an object become equal, the one that needed no
    cleaning wins.
    """
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        cleaned: list[tuple[str, Any]] = []
        for key, item in value.items():
            clean = storable_text(key) if isinstance(key, str) else key
            if clean is key:
                out[key] = storable(item)
            else:
                cleaned.append((clean, item))
        for key, item in cleaned:
            if key not in out:
                out[key] = storable(item)
        return out
    if isinstance(value, list):
        return list(map(storable, value))  # one call per level, as deep as the decoder went
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def storable_text(value: str) -> str:
    """``value`` without NUL characters and with each lone surrogate replaced by U+FFFD (a
    surrogate pair becomes its character). The same object when nothing had to change."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


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
    return [change for i, entry in enumerate(entries) for change in _entry_changes(i, entry)]


def _entry_changes(i: int, entry: Any) -> list[Change]:
    """The changes of ``entry[i]``, or a :class:`PayloadError` naming what is wrong with it."""
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
    entry_time = entry_seconds(entry.get("time"))
    items = entry.get("changes")
    if not isinstance(items, list) or not items:
        raise PayloadError(f"entry[{i}].changes is not a non-empty list")
    return [_change(i, j, change, waba_id, entry_time) for j, change in enumerate(items)]


def entry_seconds(value: Any) -> int | None:
    """An entry's ``time`` as Unix seconds: an integer or a digit string (Meta's reference
    quotes it once, docs/meta.md#116-acting-on-account_update), within 1970..9999; else None."""
    seconds = _seconds(value)
    return seconds if seconds is not None and 0 < seconds <= LATEST else None


def _seconds(value: Any) -> int | None:
    """Unix seconds written as Meta writes them: an integer or a digit string."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _change(i: int, j: int, change: Any, waba_id: str, entry_time: int | None) -> Change:
    if not isinstance(change, dict):
        raise PayloadError(f"entry[{i}].changes[{j}] is not an object")
    field = change.get("field")
    if not isinstance(field, str) or not field or len(field) > MAX_FIELD_LENGTH:
        raise PayloadError(f"entry[{i}].changes[{j}].field is missing or not a name")
    value = change.get("value")
    if not isinstance(value, dict):
        raise PayloadError(f"entry[{i}].changes[{j}].value is not an object")
    return Change(waba_id, field, value, entry_time)


def unix_time(value: Any, *, now: float) -> datetime | None:
    """A Meta timestamp (string or int Unix seconds) as UTC, or None if implausible."""
    seconds = _seconds(value)
    if seconds is None or seconds < EARLIEST or seconds > now + FUTURE_SLACK_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def clean_text(value: Any, limit: int = 65_536) -> str | None:
    """A text body safe to store (:func:`storable_text`), of bounded length."""
    if not isinstance(value, str):
        return None
    return storable_text(value)[:limit]
