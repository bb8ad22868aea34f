"""Phone numbers as text: E.164 digits and the way Graph displays them."""

from __future__ import annotations

import re
from typing import Final

_TWO_DIGIT_COUNTRY_CODES: Final = frozenset(
    {20, 27, *range(30, 35), 36, 39, 40, 41, *range(43, 50), *range(51, 59), *range(60, 67)}
    | {81, 82, 84, 86, *range(90, 96), 98}
)


def normalize_digits(display_phone_number: str) -> str:
    """Return the E.164 digits of a phone number written with ``+``, spaces, dashes or dots."""
    digits = re.sub(r"[\s+\-().]", "", display_phone_number)
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise ValueError(f"not an E.164 phone number: {display_phone_number!r}")
    return digits


def format_display_number(digits: str) -> str:
    """Format E.164 digits the way Graph's ``display_phone_number`` does, e.g. +1 555-078-3881."""
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]}-{digits[4:7]}-{digits[7:]}"
    if digits[0] == "7":
        country, rest = digits[:1], digits[1:]
    elif int(digits[:2]) in _TWO_DIGIT_COUNTRY_CODES:
        country, rest = digits[:2], digits[2:]
    else:
        country, rest = digits[:3], digits[3:]
    groups = [rest[:-7], rest[-7:-4], rest[-4:]] if len(rest) > 7 else [rest[:-4], rest[-4:]]
    return f"+{country} " + " ".join(group for group in groups if group)
