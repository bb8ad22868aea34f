"""Cursors: opaque, tied to their listing, and checked on the way in."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from onboarding.read.pages import CursorError, decode, encode, micros, moment


def test_a_cursor_gives_back_its_key() -> None:
    """What :func:`encode` made, :func:`decode` returns for the same listing."""
    assert decode(encode("messages.asc", 1, 2), "messages.asc", 2) == (1, 2)


def test_times_round_trip_to_the_microsecond() -> None:
    """A stored time survives the cursor exactly."""
    at = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert moment(micros(at)) == at


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        encode("messages.desc", 1, 2),  # another listing's
        encode("messages.asc", 1),  # too short a key
        _raw('["messages.asc",1,true]'),  # not integers
        _raw('["messages.asc",1,2.5]'),
        _raw('["messages.asc",1,99999999999999999999]'),  # beyond 64 bits
        _raw('{"messages.asc":1}'),
        _raw("not json"),
        "abc$",  # not base64url
        "",
        "A" * 300,  # longer than any cursor made
        "🙂",
    ],
)
def test_a_cursor_not_made_for_this_listing_is_refused(cursor: str) -> None:
    """Anything but a cursor this listing made raises :class:`CursorError`."""
    with pytest.raises(CursorError):
        decode(cursor, "messages.asc", 2)


def test_a_time_out_of_range_is_refused() -> None:
    """A cursor time no datetime can hold raises :class:`CursorError`, not OverflowError."""
    with pytest.raises(CursorError):
        moment(2**62)
