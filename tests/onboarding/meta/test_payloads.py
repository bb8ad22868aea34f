"""Decoding deliveries: whatever a signed body carries, what the worker reads can be stored."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onboarding.meta.payloads import (
    PayloadError,
    clean_text,
    digits,
    load,
    parse_delivery,
    storable,
    storable_text,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HUGE = "9" * 5_000


def storable_everywhere(value: Any) -> bool:
    """No NUL and no lone surrogate in any string or key, no NaN or infinity anywhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(storable_everywhere(k) and storable_everywhere(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable_everywhere(item) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def body(value: Any) -> bytes:
    """``value`` as Meta would send it: ASCII JSON, lone surrogates as ``\\udXXX`` escapes."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


# -- strings -------------------------------------------------------------------------------


def test_nul_is_removed_from_values_and_keys() -> None:
    """An escaped NUL is removed wherever it is, in a key or a value."""
    assert load(b'{"ca\\u0000ption": ["a\\u0000b", "\\u0000"]}') == {"caption": ["ab", ""]}


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(b'"a\\ud800b"', "a\ufffdb", id="high-alone"),
        pytest.param(b'"a\\udc00b"', "a\ufffdb", id="low-alone"),
        pytest.param(b'"end\\uDBFF"', "end\ufffd", id="high-at-the-end"),
        pytest.param(b'"\\ude00\\ud83d"', "\ufffd\ufffd", id="pair-reversed"),
        pytest.param(b'"\\ud800\\ud83d\\ude00"', "\ufffd\U0001f600", id="high-then-pair"),
    ],
)
def test_lone_surrogates_become_replacement_characters(raw: bytes, text: str) -> None:
    """A surrogate without its other half, which UTF-8 cannot encode, becomes U+FFFD."""
    assert load(raw) == text


def test_escaped_surrogate_pairs_are_one_character_beside_lone_ones() -> None:
    """A high surrogate escape followed by a low one is the character they encode."""
    assert load(b'{"emoji": "\\ud83c\\udf35 \\uD83D\\uDE00 \\ud83c"}') == {
        "emoji": "\U0001f335 \U0001f600 \ufffd"
    }


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(b'"\\\\u0000 \\u0000"', "\\u0000 ", id="nul-as-text"),
        pytest.param(b'"\\\\ud800 \\ud800"', "\\ud800 \ufffd", id="surrogate-as-text"),
        pytest.param(b'"\\\\\\\\ud800 \\udc00"', "\\\\ud800 \ufffd", id="two-backslashes"),
        pytest.param(b'"\\\\ud83d\\ude00"', "\\ud83d\ufffd", id="text-high-then-real-low"),
        pytest.param(b'"\\\\\\ud83d\\ude00\\u0000"', "\\\U0001f600", id="backslash-then-pair"),
        pytest.param(b'"\\\\\\u0000"', "\\", id="backslash-then-nul"),
    ],
)
def test_backslash_u_written_as_text_is_kept_and_real_escapes_are_cleaned(
    raw: bytes, text: str
) -> None:
    """An escaped backslash before ``u`` is text and kept; the escape after it is still cleaned."""
    assert load(raw) == text


def test_storable_text_is_the_same_object_when_nothing_changes() -> None:
    """Clean strings are not copied (the walk and clean_text cost nothing for them)."""
    for text in ("plain", "caf\u00e9 \U0001f335", ""):
        assert storable_text(text) is text


def test_clean_text_removes_nul_replaces_lone_surrogates_and_bounds_length() -> None:
    """Text bodies follow the same rule as everything else, then the length limit."""
    assert clean_text("a\x00b\ud800c", 3) == "ab\ufffd"
    assert clean_text(5) is None


def test_a_key_that_needed_cleaning_yields_to_the_clean_one() -> None:
    """Where cleaning makes two keys equal, the key that was clean already keeps its value."""
    assert load(b'{"i\\u0000d": "forged", "id": "wamid.A"}') == {"id": "wamid.A"}
    assert load(b'{"id": "wamid.A", "i\\u0000d": "forged"}') == {"id": "wamid.A"}
    assert load(b'{"i\\u0000d": "only"}') == {"id": "only"}


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_nan_and_infinities_become_null(literal: bytes) -> None:
    """NaN, ±Infinity and floats beyond a double, which JSONB refuses, are null."""
    assert load(b'{"latitude": ' + literal + b', "longitude": 2.5}') == {
        "latitude": None,
        "longitude": 2.5,
    }


def test_integers_are_kept_exactly_up_to_what_python_reads() -> None:
    """Integers beyond BIGINT are kept; one over 4,300 digits is null, not a broken body."""
    big = 10**40 + 7
    assert load(f"[{big}, -{big}, {'8' * 4_300}]".encode()) == [big, -big, int("8" * 4_300)]
    assert load(f'{{"n": {HUGE}, "m": -{HUGE}, "k": 1}}'.encode()) == {
        "n": None,
        "m": None,
        "k": 1,
    }
    with pytest.raises(PayloadError, match="not JSON"):  # still refused when broken
        load(f'{{"n": {HUGE}, '.encode())


# -- ids -------------------------------------------------------------------------------------


def test_digits_longer_than_a_phone_column_are_not_a_phone_number() -> None:
    """More than 64 digits (the phone and thread columns) is no phone number, not a cut one."""
    assert digits("+1 (650) 555-1234") == "16505551234"
    assert digits("1" * 64) == "1" * 64
    assert digits("1" * 65) is None
    assert digits(10**70) is None
    assert digits("no digits") is None


def delivery(metadata: dict[str, Any], time: Any = 1_700_000_000) -> bytes:
    change = {"field": "history", "value": {"metadata": metadata, "history": []}}
    entry = {"id": "102290129340398", "time": time, "changes": [change]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


@pytest.mark.parametrize(
    ("pnid", "expected"),
    [
        pytest.param("1" * 33, None, id="33-digits"),
        pytest.param(10**40, None, id="huge-number"),
        pytest.param("10654\x00", "10654", id="nul-removed"),
    ],
)
def test_phone_number_id_is_digits_that_fit_its_column(pnid: Any, expected: str | None) -> None:
    """The routing phone_number_id is at most 32 ASCII digits after cleaning, else unknown."""
    [change] = parse_delivery(delivery({"phone_number_id": pnid}))
    assert change.phone_number_id == expected


@pytest.mark.parametrize("time", [10**30, 253_402_300_800, -5, 0])
def test_an_entry_time_no_date_can_hold_is_unknown(time: Any) -> None:
    """An entry time before 1970 or after 9999 is treated as absent; 9999's last second is not."""
    [change] = parse_delivery(delivery({}, time=time))
    assert change.entry_time is None
    [change] = parse_delivery(delivery({}, time=253_402_300_799))
    assert change.entry_time == 253_402_300_799


def test_an_entry_time_quoted_as_digits_is_read() -> None:
    """Meta's account_update reference quotes ``"time": "1739212624"`` once: it is the same
    time as the integer."""
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": "1739212624",
                "changes": [
                    {
                        "field": "account_update",
                        "value": {"phone_number": "15550783881", "event": "PARTNER_REMOVED"},
                    }
                ],
            }
        ],
    }
    [change] = parse_delivery(json.dumps(body).encode())
    assert change.entry_time == 1_739_212_624


@pytest.mark.parametrize(
    "time", ["", " 1739212624", "1739212624.5", "-5", "0", "١٧٣٩", "9" * 13, "253402300800"]
)
def test_an_entry_time_string_that_is_not_a_date_is_unknown(time: str) -> None:
    """A quoted time that is not plain ASCII digits naming a second in 1970..9999 is absent."""
    [change] = parse_delivery(delivery({}, time=time))
    assert change.entry_time is None


# -- properties ------------------------------------------------------------------------------

anything = st.characters(blacklist_categories=()) | st.sampled_from(
    ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\\", '"', "u", "d", "8", "\U0001f335"]
)
texts = st.text(anything, max_size=12)
numbers = (
    st.integers()
    | st.integers(min_value=2**63)
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf])
)
values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@FAST
@given(values)
def test_any_json_value_decodes_to_storable_values(value: Any) -> None:
    """Arbitrary text (NUL, lone surrogates, backslashes) and numbers decode storable."""
    assert storable_everywhere(load(body(value)))


@FAST
@given(values)
def test_the_scan_walks_every_body_that_needs_it(value: Any) -> None:
    """Skipping the walk for bodies without a risky escape changes nothing: same as walking."""
    raw = body(value)
    assert load(raw) == storable(json.loads(raw, parse_constant=lambda _: None))


escape_soup = st.lists(
    st.sampled_from(
        ["\\", "\\\\", "\\u0000", "\\ud83d", "\\uDE00", "\\udbff", "\\udc00", "u", "d8", "a"]
    ),
    max_size=12,
).map("".join)


@FAST
@given(escape_soup)
def test_runs_of_backslashes_and_escapes_decode_storable_or_are_not_json(soup: str) -> None:
    """Escaped backslashes next to real and text escapes decode storable, or are not JSON."""
    try:
        decoded = load(b'["' + soup.encode() + b'"]')
    except PayloadError:
        return
    assert storable_everywhere(decoded)
