"""Invitation links to the hosted signup page, and the watch tokens that follow an onboarding.

A link is ``<base>/connect?ref=<ref>&exp=<unix seconds>&sig=<hex>`` where ``sig`` is the hex
HMAC-SHA256 of ``"connect-link\\n<ref>\\n<exp>"`` keyed by ``COEX_CONNECT_LINK_SECRET``. The
``ref`` is the provider's own name for the customer (letters, digits and ``._:-``, at most 64
characters), stored on the onboarding the link starts. Whoever holds a valid link may run
Embedded Signup for that ref until it expires: nothing more.

A watch token binds one browser to the onboarding its hand-off created: ``<id>.<exp>.<hex>``
with the HMAC of ``"connect-watch\\n<ref>\\n<id>\\n<exp>"``. It is returned by the hand-off only,
so a link alone never shows the progress of an onboarding.

Signatures are compared in constant time; every refusal is a :class:`LinkError` whose message
is meant for the person holding the link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlencode

from models import utcnow

REF_PATTERN: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: The longest an invitation may live.
MAX_LINK_LIFETIME: Final = timedelta(days=90)
MIN_LINK_LIFETIME: Final = timedelta(minutes=1)
DEFAULT_LINK_LIFETIME: Final = timedelta(days=7)
_DURATION: Final = re.compile(r"(\d{1,7})([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIG: Final = re.compile(r"[0-9a-f]{64}")
_WATCH: Final = re.compile(r"([0-9]{1,19})\.([0-9]{1,12})\.([0-9a-f]{64})")
_EXP: Final = re.compile(r"[0-9]{1,12}")


class LinkError(ValueError):
    """A link or watch token that cannot be used; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Invitation:
    """A verified (or freshly signed) invitation."""

    ref: str
    expires_at: int
    sig: str

    def url(self, base: str) -> str:
        query = urlencode({"ref": self.ref, "exp": str(self.expires_at), "sig": self.sig})
        return f"{base.rstrip('/')}/connect?{query}"


def check_ref(ref: str) -> str:
    """``ref`` if it is a usable customer reference, else :class:`LinkError`."""
    if not REF_PATTERN.fullmatch(ref):
        raise LinkError(
            "bad_ref",
            "ref must be 1 to 64 letters, digits or . _ : - (the provider's customer reference)",
        )
    return ref


def parse_lifetime(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``3600s`` as a duration within the allowed bounds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise LinkError("bad_expiry", "expires must be a number and a unit: 30m, 12h, 7d")
    return check_lifetime(timedelta(seconds=int(match[1]) * _UNITS[match[2]]))


def check_lifetime(lifetime: timedelta) -> timedelta:
    if not MIN_LINK_LIFETIME <= lifetime <= MAX_LINK_LIFETIME:
        raise LinkError("bad_expiry", "a link lives between 1 minute and 90 days")
    return lifetime


def _mac(secret: str, *parts: str) -> str:
    if not secret:
        raise LinkError("not_configured", "COEX_CONNECT_LINK_SECRET is not set")
    return hmac.new(secret.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def sign(
    secret: str, ref: str, lifetime: timedelta = DEFAULT_LINK_LIFETIME, now: datetime | None = None
) -> Invitation:
    """A new invitation for ``ref`` valid for ``lifetime``."""
    check_ref(ref)
    check_lifetime(lifetime)
    expires_at = int(((now or utcnow()) + lifetime).timestamp())
    return Invitation(ref, expires_at, _mac(secret, "connect-link", ref, str(expires_at)))


def verify(
    secret: str,
    ref: str | None,
    exp: str | None,
    sig: str | None,
    now: datetime | None = None,
    *,
    allow_expired: bool = False,
) -> Invitation:
    """The invitation the three query values make, or :class:`LinkError` (tampered, expired).

    ``allow_expired`` accepts a genuine link past its expiry: a signup started in time may be
    followed after the link's end (its watch token has its own).
    """
    if not ref or not exp or not sig:
        raise LinkError("incomplete_link", "the link is incomplete: open the link you were sent")
    if not REF_PATTERN.fullmatch(ref) or not _EXP.fullmatch(exp) or not _SIG.fullmatch(sig):
        raise LinkError("invalid_link", "the link is not valid: ask for a new one")
    expected = _mac(secret, "connect-link", ref, exp)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise LinkError("invalid_link", "the link is not valid: ask for a new one")
    if not allow_expired and int(exp) <= (now or utcnow()).timestamp():
        raise LinkError("expired_link", "the link has expired: ask for a new one")
    return Invitation(ref, int(exp), sig)


def watch_token(
    secret: str, ref: str, onboarding_id: int, lifetime: timedelta, now: datetime | None = None
) -> str:
    """A token that lets the browser holding it follow ``onboarding_id`` for ``lifetime``."""
    expires_at = int(((now or utcnow()) + lifetime).timestamp())
    mac = _mac(secret, "connect-watch", ref, str(onboarding_id), str(expires_at))
    return f"{onboarding_id}.{expires_at}.{mac}"


def verify_watch(secret: str, ref: str, token: str | None, now: datetime | None = None) -> int:
    """The onboarding id ``token`` lets its holder follow for ``ref``, or :class:`LinkError`."""
    match = _WATCH.fullmatch(token or "")
    if match is None:
        raise LinkError("invalid_watch", "the progress token is not valid: start again")
    onboarding_id, exp, mac = match[1], match[2], match[3]
    expected = _mac(secret, "connect-watch", ref, onboarding_id, exp)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise LinkError("invalid_watch", "the progress token is not valid: start again")
    if int(exp) <= (now or utcnow()).timestamp():
        raise LinkError("expired_watch", "the progress token has expired: open the link again")
    return int(onboarding_id)
