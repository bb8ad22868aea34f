"""Phone numbers as text: E.164 digits and Graph's display format."""

from __future__ import annotations

import pytest

from onboarding.sandbox.numbers import format_display_number, normalize_digits


def test_digits_drop_plus_spaces_dashes_dots_and_brackets() -> None:
    """A number written for people becomes its bare E.164 digits."""
    assert normalize_digits("+1 (555) 078-3881") == "15550783881"
    assert normalize_digits("+44 7700.900.123") == "447700900123"


@pytest.mark.parametrize("raw", ["1234567", "1" * 16, "+1 555 CALL NOW"])
def test_what_is_not_e164_is_refused(raw: str) -> None:
    """Too short, too long or not digits is a ValueError."""
    with pytest.raises(ValueError, match=r"not an E\.164 phone number"):
        normalize_digits(raw)


@pytest.mark.parametrize(
    ("digits", "shown"),
    [
        ("15550783881", "+1 555-078-3881"),
        ("79123456789", "+7 912 345 6789"),
        ("447700900123", "+44 770 090 0123"),
        ("919876543210", "+91 987 654 3210"),
        ("3531234567", "+353 123 4567"),
    ],
)
def test_display_format_groups_the_country_code_then_the_rest(digits: str, shown: str) -> None:
    """The country code is 1, 2 or 3 digits and the rest is grouped from the end."""
    assert format_display_number(digits) == shown
