"""Invitation links and watch tokens: signed, bounded, checked in constant time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from onboarding.connect.links import (
    LinkError,
    check_ref,
    parse_lifetime,
    sign,
    verify,
    verify_watch,
    watch_token,
)

SECRET = "connect-link-secret-for-tests-0123"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_signed_link_verifies_until_it_expires() -> None:
    """A link made for a ref verifies with its own ref, exp and sig before its expiry."""
    link = sign(SECRET, "customer-4711", timedelta(days=7), NOW)
    q = query(link.url("https://onboard.example.com/"))

    found = verify(SECRET, q["ref"], q["exp"], q["sig"], NOW + timedelta(days=6))

    assert (found.ref, found.expires_at) == ("customer-4711", link.expires_at)


def test_the_url_is_under_the_base_at_connect() -> None:
    """The link is ``<base>/connect?ref=&exp=&sig=``, the base's trailing slash dropped."""
    url = sign(SECRET, "c1", timedelta(hours=1), NOW).url("https://onboard.example.com/")

    assert url.startswith("https://onboard.example.com/connect?ref=c1&exp=")


def test_an_expired_link_is_refused() -> None:
    """At its expiry a link is refused as expired."""
    link = sign(SECRET, "c1", timedelta(hours=1), NOW)

    with pytest.raises(LinkError) as refused:
        verify(SECRET, "c1", str(link.expires_at), link.sig, NOW + timedelta(hours=1))

    assert refused.value.reason == "expired_link"


def test_an_expired_link_may_be_followed_when_allowed() -> None:
    """``allow_expired`` accepts a genuine link past its expiry (to follow a signup)."""
    link = sign(SECRET, "c1", timedelta(hours=1), NOW)

    found = verify(
        SECRET, "c1", str(link.expires_at), link.sig, NOW + timedelta(days=1), allow_expired=True
    )

    assert found.ref == "c1"


@pytest.mark.parametrize(
    ("ref", "exp_delta", "sig_change"),
    [("c2", 0, False), ("c1", 3600, False), ("c1", 0, True)],
    ids=["other ref", "longer expiry", "changed signature"],
)
def test_a_tampered_link_is_refused(ref: str, exp_delta: int, sig_change: bool) -> None:
    """Changing the ref, the expiry or the signature makes the link invalid."""
    link = sign(SECRET, "c1", timedelta(hours=1), NOW)
    sig = ("0" if link.sig[0] != "0" else "1") + link.sig[1:] if sig_change else link.sig

    with pytest.raises(LinkError) as refused:
        verify(SECRET, ref, str(link.expires_at + exp_delta), sig, NOW)

    assert refused.value.reason == "invalid_link"


def test_a_link_signed_with_another_secret_is_refused() -> None:
    """A link signed with another key does not verify."""
    link = sign("another-secret", "c1", timedelta(hours=1), NOW)

    with pytest.raises(LinkError, match="not valid"):
        verify(SECRET, "c1", str(link.expires_at), link.sig, NOW)


@pytest.mark.parametrize(
    ("ref", "exp", "sig"),
    [
        (None, "1", "a" * 64),
        ("c1", "", "a" * 64),
        ("c1", "1", None),
    ],
)
def test_an_incomplete_link_is_refused(ref: str | None, exp: str | None, sig: str | None) -> None:
    """A link missing its ref, expiry or signature is incomplete."""
    with pytest.raises(LinkError) as refused:
        verify(SECRET, ref, exp, sig, NOW)

    assert refused.value.reason == "incomplete_link"


@pytest.mark.parametrize(
    ("exp", "sig"), [("12x", "a" * 64), ("1" * 13, "a" * 64), ("1", "A" * 64), ("1", "a" * 63)]
)
def test_malformed_values_are_refused_before_any_mac(exp: str, sig: str) -> None:
    """A non-numeric or overlong expiry, or a signature not 64 lowercase hex, is invalid."""
    with pytest.raises(LinkError) as refused:
        verify(SECRET, "c1", exp, sig, NOW)

    assert refused.value.reason == "invalid_link"


@pytest.mark.parametrize("ref", ["", "a" * 65, "has space", "naïve", "a/b", "a&b=c"])
def test_a_ref_outside_the_charset_or_length_is_refused(ref: str) -> None:
    """A ref is 1 to 64 letters, digits or ``._:-``."""
    with pytest.raises(LinkError) as refused:
        check_ref(ref)

    assert refused.value.reason == "bad_ref"


def test_no_link_is_signed_without_a_secret() -> None:
    """Without ``COEX_CONNECT_LINK_SECRET`` no link is signed."""
    with pytest.raises(LinkError) as refused:
        sign("", "c1", timedelta(hours=1), NOW)

    assert refused.value.reason == "not_configured"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800), ("90s", 90)]
)
def test_lifetimes_read_a_number_and_a_unit(text: str, seconds: int) -> None:
    """``30m``, ``12h``, ``7d``, ``90s`` are durations."""
    assert parse_lifetime(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7", "d", "-1d", "1w", "30s", "91d", "7 days"])
def test_lifetimes_out_of_shape_or_bounds_are_refused(text: str) -> None:
    """A lifetime without a unit, under a minute or over 90 days is refused."""
    with pytest.raises(LinkError) as refused:
        parse_lifetime(text)

    assert refused.value.reason == "bad_expiry"


def test_a_watch_token_names_its_onboarding_for_its_ref_only() -> None:
    """A watch token gives its onboarding id for its ref, and is invalid for another ref."""
    token = watch_token(SECRET, "c1", 42, timedelta(hours=1), NOW)

    assert verify_watch(SECRET, "c1", token, NOW) == 42
    with pytest.raises(LinkError, match="not valid"):
        verify_watch(SECRET, "c2", token, NOW)


def test_a_watch_token_for_another_onboarding_is_refused() -> None:
    """Changing the onboarding id in a watch token invalidates it."""
    token = watch_token(SECRET, "c1", 42, timedelta(hours=1), NOW)

    with pytest.raises(LinkError, match="not valid"):
        verify_watch(SECRET, "c1", "43" + token[2:], NOW)


def test_an_expired_watch_token_is_refused() -> None:
    """A watch token is refused once its lifetime is over."""
    token = watch_token(SECRET, "c1", 42, timedelta(hours=1), NOW)

    with pytest.raises(LinkError) as refused:
        verify_watch(SECRET, "c1", token, NOW + timedelta(hours=2))

    assert refused.value.reason == "expired_watch"
