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

An override is never removed silently: coexist never posts an empty body to a subscribed WABA.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from config import Settings
from models import Onboarding
from onboarding.meta import subscriptions
from onboarding.meta.graph import GraphClient
from onboarding.states import note, raise_alert

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
        return "app subscribed"
    graph.subscribe_app(waba_id, token, override=wanted)
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
