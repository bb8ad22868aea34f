"""Subscribing a WABA's webhooks without breaking the provider's own routing.

``POST /{waba-id}/subscribed_apps`` with an empty body **removes** a WABA-level callback
override set earlier (docs/meta.md#117-subscribing-without-losing-an-override). So the
subscription is read first and:

* our app already subscribed, with no configured override or the same one: nothing is posted,
  and an override found there is kept (and noted on the timeline);
* not subscribed: an empty body (there is no override of ours to lose), or the configured
  override (``COEX_WEBHOOK_OVERRIDE_URL`` and its verify token);
* subscribed with another override than the configured one: the configured one is posted,
  the replacement noted on the timeline and an operator alert raised.

An override is never removed silently: coexist never posts an empty body to a subscribed WABA,
except to take back the override it set itself (``Onboarding.webhook_override_set``) once the
onboarding has ended (:func:`release_override`): then the WABA's webhooks go back to the app's
callback, the provider's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config import Settings
from config.logging import bind, register_secret
from models import Onboarding, OnboardingState, utcnow
from models.crypto import TokenCipher, TokenDecryptError
from onboarding.meta import subscriptions
from onboarding.meta.errors import GraphError, PermanentGraphError
from onboarding.meta.graph import GraphClient
from onboarding.states import note, raise_alert

#: Onboardings whose override coexist takes back: those that have ended.
ENDED = (OnboardingState.DISCONNECTED.value,)
#: A removal that keeps failing for this long after the onboarding ended is given up, with an
#: operator alert (the override then stays until someone removes it).
RELEASE_GIVE_UP = timedelta(days=1)

log = structlog.get_logger(__name__)


def subscribe(
    session: Session, graph: GraphClient, settings: Settings, onboarding: Onboarding, token: str
) -> str:
    """Make sure our app gets the WABA's webhooks, keeping or setting its override.

    Returns a short account of what was done, for the timeline. Graph errors propagate.
    """
    waba_id = onboarding.waba_id
    current = subscriptions.of_app(graph.subscribed_apps(waba_id, token), graph.app_id)
    wanted = settings.webhook_override
    found = current.override_callback_uri
    if current.subscribed and (wanted is None or found == wanted[0]):
        kept = f"; its webhook override {found} is kept" if found else ""
        note(onboarding, f"app already subscribed to WABA {waba_id}: nothing posted{kept}")
        log.info("waba_subscription_kept", override_callback_uri=found)
        return f"app already subscribed{kept}"
    if wanted is None:
        graph.subscribe_app(waba_id, token)
        onboarding.webhook_override_set = None
        return "app subscribed"
    graph.subscribe_app(waba_id, token, override=wanted)
    onboarding.webhook_override_set = wanted[0]
    if found is None:
        note(onboarding, f"webhook override of WABA {waba_id} set to {wanted[0]}")
        log.info("webhook_override_set", override_callback_uri=wanted[0])
        return f"app subscribed with webhook override {wanted[0]}"
    cause = (
        f"webhook override of WABA {waba_id} replaced: {found} -> {wanted[0]} "
        "(COEX_WEBHOOK_OVERRIDE_URL)"
    )
    note(onboarding, cause)
    raise_alert(
        session, onboarding.id, "webhook_override_replaced", f"onboarding {onboarding.id}: {cause}"
    )
    log.warning("webhook_override_replaced", previous=found, override_callback_uri=wanted[0])
    return f"webhook override replaced with {wanted[0]}"


def release_override(graph: GraphClient, onboarding: Onboarding, token: str) -> str:
    """Remove the WABA override coexist set, if it is still the WABA's; clears the record.

    ``POST /{waba-id}/subscribed_apps`` with an empty body removes the override and keeps the
    app subscribed (docs/meta.md#117-subscribing-without-losing-an-override). An override
    someone else put there since, or a subscription already gone, is left alone. Returns what
    was done, for the timeline; Graph errors propagate (the record is then kept).
    """
    mine = onboarding.webhook_override_set
    if mine is None:
        return "no webhook override of coexist's to remove"
    waba_id = onboarding.waba_id
    current = subscriptions.of_app(graph.subscribed_apps(waba_id, token), graph.app_id)
    if not current.subscribed:
        outcome = f"app no longer subscribed to WABA {waba_id}: override {mine} already gone"
    elif current.override_callback_uri != mine:
        found = current.override_callback_uri or "none"
        outcome = f"webhook override of WABA {waba_id} is now {found}, not coexist's: left as is"
    else:
        graph.subscribe_app(waba_id, token)
        outcome = f"webhook override {mine} of WABA {waba_id} removed (onboarding ended)"
    onboarding.webhook_override_set = None
    note(onboarding, outcome)
    log.info("webhook_override_released", outcome=outcome)
    return outcome


def release_overrides(
    session: Session,
    graph: GraphClient,
    cipher: TokenCipher,
    *,
    limit: int = 50,
    now: datetime | None = None,
) -> dict[int, str]:
    """Take back coexist's override of each ended (disconnected or erased) onboarding (one
    commit each); what was done.

    A transient Graph error leaves the onboarding for the next run; a permanent one (the
    partner removed, a dead token), or failures past :data:`RELEASE_GIVE_UP`, drop the record
    with a ``webhook_override_not_removed`` alert naming the override to remove by hand.
    """
    now = now or utcnow()
    ids = session.scalars(
        select(Onboarding.id)
        .where(
            or_(Onboarding.state.in_(ENDED), Onboarding.erased_at.is_not(None)),
            Onboarding.webhook_override_set.is_not(None),
        )
        .order_by(Onboarding.id)
        .limit(limit)
    ).all()
    done: dict[int, str] = {}
    for onboarding_id in ids:
        onboarding = session.get_one(Onboarding, onboarding_id)
        bind(onboarding_id=onboarding.id, waba_id=onboarding.waba_id)
        try:
            if onboarding.token_ciphertext is None:
                raise PermanentGraphError("no business token to call Graph with")
            token = cipher.decrypt(onboarding.token_ciphertext)
            register_secret(token)
            done[onboarding_id] = release_override(graph, onboarding, token)
        except TokenDecryptError as exc:
            done[onboarding_id] = _give_up(session, onboarding, str(exc))
        except GraphError as exc:
            ended_at = onboarding.erased_at or onboarding.state_changed_at
            given_up = isinstance(exc, PermanentGraphError) or (now - ended_at > RELEASE_GIVE_UP)
            if not given_up:
                session.rollback()
                log.warning("webhook_override_release_failed", error=str(exc))
                done[onboarding_id] = f"not removed yet: {exc}"
                continue
            done[onboarding_id] = _give_up(session, onboarding, str(exc))
        if onboarding.erased_at is not None:  # the erasure kept it for this call only
            onboarding.token_ciphertext = None
        session.commit()
    return done


def _give_up(session: Session, onboarding: Onboarding, error: str) -> str:
    mine = onboarding.webhook_override_set
    cause = (
        f"webhook override {mine} of WABA {onboarding.waba_id} could not be removed ({error}); "
        "remove it by hand if the WABA is still subscribed"
    )
    onboarding.webhook_override_set = None
    note(onboarding, cause)
    raise_alert(session, onboarding.id, "webhook_override_not_removed", cause)
    log.warning("webhook_override_not_removed", error=error)
    return cause
