"""What the entry points call: make an invitation link, accept the page's hand-off, watch it.

:func:`create_link` is the one way to make a link (``coexist connect-link`` and
``POST /v1/admin/connect-links``). :func:`accept_handoff` records the page's hand-off through
the same intake as ``POST /signup`` and keeps the invitation's ``ref`` on what it records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import Settings
from models import Onboarding
from models.crypto import TokenCipher
from onboarding.connect.links import (
    DEFAULT_LINK_LIFETIME,
    Invitation,
    LinkError,
    sign,
    verify,
    verify_watch,
    watch_token,
)
from onboarding.signup.intake import SignupBody, SignupOutcome, accept_signup


@dataclass(frozen=True)
class CreatedLink:
    """A new invitation and the URL to send to the business."""

    invitation: Invitation
    url: str


def base_url(settings: Settings, fallback: str | None) -> str:
    """Where links point: ``COEX_PUBLIC_URL``, else ``fallback`` (the request's base URL)."""
    base = settings.public_url or fallback
    if not base:
        raise LinkError("not_configured", "COEX_PUBLIC_URL is not set: links need a base URL")
    return base.rstrip("/")


def create_link(
    settings: Settings,
    ref: str,
    lifetime: timedelta = DEFAULT_LINK_LIFETIME,
    *,
    fallback_base: str | None = None,
    now: datetime | None = None,
) -> CreatedLink:
    """Sign an invitation for the customer ``ref``, valid for ``lifetime``."""
    invitation = sign(settings.connect_link_secret.get_secret_value(), ref, lifetime, now)
    return CreatedLink(invitation, invitation.url(base_url(settings, fallback_base)))


def check_link(
    settings: Settings,
    ref: str | None,
    exp: str | None,
    sig: str | None,
    *,
    allow_expired: bool = False,
) -> Invitation:
    """The invitation of a request's ``ref``, ``exp`` and ``sig``, or :class:`LinkError`."""
    secret = settings.connect_link_secret.get_secret_value()
    return verify(secret, ref, exp, sig, allow_expired=allow_expired)


@dataclass(frozen=True)
class Handoff:
    """The intake's outcome, with the watch token when it names this invitation's onboarding."""

    outcome: SignupOutcome
    watch: str | None


def accept_handoff(
    session: Session,
    body: SignupBody,
    invitation: Invitation,
    *,
    settings: Settings,
    cipher: TokenCipher,
) -> Handoff:
    """Record the page's hand-off as ``POST /signup`` does, under the invitation's ``ref``.

    A finish yields a watch token for its onboarding, unless the code had already started an
    onboarding through another invitation (then that one's progress is not this page's).
    """
    outcome = accept_signup(
        session, body, settings=settings, cipher=cipher, connect_ref=invitation.ref
    )
    if outcome.onboarding_id is None:
        return Handoff(outcome, None)
    onboarding = session.get(Onboarding, outcome.onboarding_id)
    if onboarding is None or onboarding.connect_ref != invitation.ref:
        return Handoff(outcome, None)
    token = watch_token(
        settings.connect_link_secret.get_secret_value(),
        invitation.ref,
        onboarding.id,
        timedelta(hours=settings.connect_watch_hours),
    )
    return Handoff(outcome, token)


def watched(session: Session, settings: Settings, ref: str, token: str | None) -> Onboarding:
    """The onboarding ``token`` lets the holder of ``ref``'s link follow, or :class:`LinkError`."""
    onboarding_id = verify_watch(settings.connect_link_secret.get_secret_value(), ref, token)
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None or onboarding.connect_ref != ref:
        raise LinkError("invalid_watch", "the progress token is not valid: start again")
    return onboarding
