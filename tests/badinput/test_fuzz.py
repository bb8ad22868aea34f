"""parse_delivery on arbitrary input: a list of Change or a PayloadError, nothing else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onboarding.meta.payloads import Change, PayloadError, parse_delivery

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        ["whatsapp_business_account", "history", "102290129340398", "\u0661\u0662\u0663"]
    )
)
jsonish = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["object", "entry", "id", "time", "changes", "field", "value"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)
envelopes = st.fixed_dictionaries(
    {"object": st.just("whatsapp_business_account") | scalars},
    optional={
        "entry": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": scalars,
                    "time": scalars,
                    "changes": st.lists(
                        st.fixed_dictionaries({}, optional={"field": scalars, "value": jsonish}),
                        max_size=3,
                    )
                    | jsonish,
                },
            )
            | jsonish,
            max_size=3,
        ),
        "history": jsonish,
        "metadata": jsonish,
    },
)


def check(body: bytes) -> None:
    try:
        changes = parse_delivery(body)
    except PayloadError as exc:
        reason = str(exc)
        changes = None
    if changes is None:
        assert reason
        return
    assert isinstance(changes, list)
    assert changes
    for change in changes:
        assert isinstance(change, Change)
        assert isinstance(change.field, str)
        assert isinstance(change.value, dict)
        _ = change.phone_number_id, change.business_number


@FAST
@given(st.binary(max_size=512))
def test_arbitrary_bytes_parse_or_raise_payload_error(body: bytes) -> None:
    """Any bytes give a list of Change or a PayloadError with a reason."""
    check(body)


@FAST
@given(jsonish)
def test_arbitrary_json_parse_or_raise_payload_error(value: Any) -> None:
    """Any JSON value gives a list of Change or a PayloadError with a reason."""
    check(json.dumps(value).encode())


@FAST
@given(envelopes)
def test_envelope_like_json_parse_or_raise_payload_error(value: dict[str, Any]) -> None:
    """Near-miss Meta envelopes give a list of Change or a PayloadError with a reason."""
    check(json.dumps(value).encode())


@FAST
@given(st.integers(min_value=1, max_value=20_000), st.sampled_from([b"[]", b"{}", b'"']))
def test_deep_nesting_and_truncation_raise_payload_error(depth: int, tail: bytes) -> None:
    """Deep or truncated nesting is a PayloadError, never a RecursionError."""
    check(b'{"a":' * depth + tail)
    check(b"[" * depth + b"]" * depth)
