"""Signup hand-off: exchange the code, find and check the number, subscribe the app.

Two steps, each idempotent and guarded by the onboarding's state and step lease:

* :func:`exchange_code` — ``received → token_exchanged`` (or ``code_expired``). The code dies
  30 s after signup, so transient failures are retried only while it can still work.
* :func:`connect` — ``token_exchanged → subscribed`` (or ``ineligible``): resolve the phone
  number, read its fields, apply the region policy, subscribe the app to the WABA's webhooks
  keeping the provider's webhook override (:mod:`onboarding.signup.routing`).
  ``/register`` is never called: a coexistence number is already registered.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config import Settings
from config.logging import bind, register_secret
from models import Onboarding, OnboardingState, utcnow
from models.crypto import TokenCipher
from onboarding import metrics
from onboarding.meta.errors import (
    CodeExchangeError,
    GraphError,
    PermanentGraphError,
    RateLimitedError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next, RetryLater
from onboarding.signup import eligibility, routing
from onboarding.states import claim, fail, raise_alert, release, transition

log = structlog.get_logger(__name__)

S = OnboardingState
NUMBER_FIELDS = "id,display_phone_number,verified_name,is_on_biz_app,platform_type,status"
EXCHANGE_LEASE_SECONDS = 25.0
#: A received signup whose exchange has not started this long after signup is enqueued again:
#: its first message may have been lost with the broker, or never sent (broker unreachable,
#: web process killed between commit and enqueue). Normally an exchange starts well within it.
RESUME_AFTER_SECONDS = 5.0


def exchange_code(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_id: int,
    now: datetime | None = None,
) -> Next | None:
    """Trade the signup code for the business token, while the code can still work."""
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        log.warning("onboarding_missing", onboarding_id=onboarding_id, step="exchange")
        return None
    bind(onboarding_id=onboarding.id, waba_id=onboarding.waba_id)
    if onboarding.state != S.RECEIVED:
        return Next.CONNECT if onboarding.state == S.TOKEN_EXCHANGED else None
    now = now or utcnow()
    code_dies_at = onboarding.signup_completed_at + settings.code_ttl
    if now >= code_dies_at:
        _expire(
            session,
            onboarding,
            "the signup code is older than "
            f"{settings.code_ttl_seconds} s and can no longer be exchanged",
        )
        return None
    if onboarding.code_ciphertext is None:
        _expire(session, onboarding, "the signup code is no longer stored")
        return None
    if not claim(session, onboarding, EXCHANGE_LEASE_SECONDS):
        log.info("step_busy", step="exchange")
        return None
    code = cipher.decrypt(onboarding.code_ciphertext)
    register_secret(code)
    try:
        token = graph.exchange_code(code)
    except CodeExchangeError as exc:
        release(onboarding)
        _expire(session, onboarding, f"Meta refused the signup code: {exc.message}")
        return None
    except TransientGraphError as exc:
        release(onboarding)
        session.commit()
        left = (code_dies_at - utcnow()).total_seconds()
        wait = exc.retry_after if isinstance(exc, RateLimitedError) and exc.retry_after else 0.5
        if left <= wait:
            _expire(session, onboarding, f"Graph API unavailable until the code died: {exc}")
            return None
        raise RetryLater(f"code exchange: {exc.message}", min(wait, left / 2)) from exc
    except PermanentGraphError as exc:
        release(onboarding)
        fail(session, onboarding, "exchange", str(exc))
        session.commit()
        return None
    onboarding.token_ciphertext = cipher.encrypt(token)
    onboarding.code_ciphertext = None
    release(onboarding)
    transition(session, onboarding, S.TOKEN_EXCHANGED, "signup code exchanged for business token")
    session.commit()
    latency = _seconds_since(onboarding, utcnow())
    metrics.CODE_EXCHANGE.observe(latency)
    log.info("token_exchanged", seconds_after_signup=latency)
    return Next.CONNECT


def unexchanged(session: Session, *, settings: Settings, now: datetime | None = None) -> list[int]:
    """Received signups whose code still lives but whose exchange has not started.

    Beat asks every few seconds (``coexist.signup.resume``), so a signup answered ``202``
    gets its exchange attempted within the code's 30 s even when its task message was lost
    or never sent. Enqueueing one again is harmless: the exchange takes the onboarding's step
    lease and checks its state, so one of the copies calls Meta and the others do nothing.
    Excluded: signups younger than :data:`RESUME_AFTER_SECONDS` (their first message is
    still on its way) and those whose lease shows an exchange under way.
    """
    now = now or utcnow()
    return list(
        session.scalars(
            select(Onboarding.id)
            .where(
                Onboarding.state == S.RECEIVED.value,
                Onboarding.signup_completed_at > now - settings.code_ttl,
                Onboarding.signup_completed_at <= now - timedelta(seconds=RESUME_AFTER_SECONDS),
                Onboarding.code_ciphertext.is_not(None),
                or_(Onboarding.lease_until.is_(None), Onboarding.lease_until < now),
            )
            .order_by(Onboarding.signup_completed_at)
            .limit(1000)
        )
    )


def _expire(session: Session, onboarding: Onboarding, cause: str) -> None:
    onboarding.code_ciphertext = None
    onboarding.last_error = cause
    transition(session, onboarding, S.CODE_EXPIRED, cause)
    raise_alert(
        session,
        onboarding.id,
        "code_expired",
        f"onboarding {onboarding.id}: {cause}; the business must run Embedded Signup again",
        severity="error",
    )
    session.commit()


def _seconds_since(onboarding: Onboarding, now: datetime) -> float:
    return round((now - onboarding.signup_completed_at).total_seconds(), 3)


def connect(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_id: int,
) -> Next | None:
    """Resolve and check the number, then subscribe the app to the WABA's webhooks."""
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        log.warning("onboarding_missing", onboarding_id=onboarding_id, step="connect")
        return None
    bind(onboarding_id=onboarding.id, waba_id=onboarding.waba_id)
    if onboarding.erased_at is not None:
        log.info("onboarding_erased", step="connect")
        return None
    if onboarding.state != S.TOKEN_EXCHANGED:
        return Next.SYNC if onboarding.state in (S.SUBSCRIBED, S.SYNCING) else None
    if utcnow() >= onboarding.sync_deadline_at:
        transition(session, onboarding, S.SYNC_WINDOW_MISSED, "sync window closed before subscribe")
        session.commit()
        return None
    if not claim(session, onboarding, settings.step_lease_seconds):
        log.info("step_busy", step="connect")
        return None
    token = cipher.decrypt(onboarding.token_ciphertext or b"")
    register_secret(token)
    try:
        outcome = _connect(session, graph, settings, onboarding, token)
    except TransientGraphError as exc:
        release(onboarding)
        session.commit()
        raise RetryLater(f"connect: {exc.message}", _backoff(exc, onboarding)) from exc
    except GraphError as exc:
        release(onboarding)
        fail(session, onboarding, "connect", str(exc))
        session.commit()
        return None
    release(onboarding)
    session.commit()
    return outcome


def _connect(
    session: Session, graph: GraphClient, settings: Settings, onboarding: Onboarding, token: str
) -> Next | None:
    if onboarding.phone_number_id is None:
        found = _find_business_app_number(graph, onboarding.waba_id, token)
        if isinstance(found, str):
            if found.startswith("ineligible:"):
                onboarding.last_error = found.removeprefix("ineligible:")
                transition(session, onboarding, S.INELIGIBLE, onboarding.last_error)
            else:
                fail(session, onboarding, "connect", found)
            return None
        onboarding.phone_number_id = found["id"]
    bind(phone_number_id=onboarding.phone_number_id)
    fields = graph.get_phone_number(onboarding.phone_number_id, token, fields=NUMBER_FIELDS)
    onboarding.display_phone_number = _str(fields.get("display_phone_number"))
    onboarding.verified_name = _str(fields.get("verified_name"))
    onboarding.platform_type = _str(fields.get("platform_type"))
    on_app = fields.get("is_on_biz_app")
    onboarding.is_on_biz_app = on_app if isinstance(on_app, bool) else None
    verdict = eligibility.check(
        onboarding.display_phone_number, settings.blocked_regions, settings.eligibility_policy
    )
    onboarding.region = verdict.region
    if onboarding.is_on_biz_app is False:
        cause = (
            f"number {onboarding.phone_number_id} is not on the WhatsApp Business app "
            "(is_on_biz_app false): not a coexistence onboarding"
        )
        onboarding.last_error = cause
        transition(session, onboarding, S.INELIGIBLE, cause)
        return None
    if not verdict.eligible:
        onboarding.last_error = verdict.reason
        transition(session, onboarding, S.INELIGIBLE, verdict.reason)
        return None
    done = routing.subscribe(session, graph, settings, onboarding, token)
    transition(
        session,
        onboarding,
        S.SUBSCRIBED,
        f"WABA {onboarding.waba_id} webhooks: {done} "
        f"(number {onboarding.phone_number_id}, {verdict.reason})",
    )
    log.info("waba_subscribed", region=verdict.region, platform_type=onboarding.platform_type)
    return Next.SYNC


def _find_business_app_number(graph: GraphClient, waba_id: str, token: str) -> dict[str, str] | str:
    """The WABA's one number with ``is_on_biz_app`` true, or a reason why there is none."""
    candidates: list[dict[str, str]] = []
    for number in graph.list_phone_numbers(waba_id, token, fields=NUMBER_FIELDS):
        number_id = number.get("id")
        if not isinstance(number_id, str) or not number_id.isdigit():
            continue
        on_app = number.get("is_on_biz_app")
        if on_app is None:  # Meta may leave it off the list; the number node has it
            on_app = graph.get_phone_number(number_id, token, fields="id,is_on_biz_app").get(
                "is_on_biz_app"
            )
        if on_app is True:
            candidates.append({"id": number_id})
    if not candidates:
        return f"ineligible:WABA {waba_id} has no number on the WhatsApp Business app"
    if len(candidates) > 1:
        ids = ", ".join(c["id"] for c in candidates)
        return (
            f"WABA {waba_id} has several Business app numbers ({ids}) and the signup did not "
            "say which; retry with --phone-number-id"
        )
    return candidates[0]


def _backoff(exc: TransientGraphError, onboarding: Onboarding) -> float:
    if isinstance(exc, RateLimitedError) and exc.retry_after:
        return min(exc.retry_after, 600.0)
    return min(60.0, 2.0 + random.uniform(0, 3))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
