"""The three reads of a reconciliation, each answered ``ok``, ``drift`` or ``unknown``.

* the number: ``GET /{phone-number-id}?fields=is_on_biz_app,platform_type``;
* the subscription: ``GET /{waba-id}/subscribed_apps`` (our app, and its override);
* the business token: ``GET /debug_token?input_token=…`` with the app token.

Only a definite answer from Meta is ``drift``. A 5xx, a throttle, a timeout, a malformed or
incomplete answer is ``unknown``: it says nothing about the account
(docs/meta.md#119-debug_token, docs/meta.md#117-subscribing-without-losing-an-override).
A check never writes; :mod:`.run` decides what to record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from config import Settings
from models import Onboarding
from onboarding.meta import subscriptions
from onboarding.meta.errors import GraphError, TokenInvalidError
from onboarding.meta.graph import GraphClient

NUMBER_FIELDS = "id,is_on_biz_app,platform_type"


class Verdict(enum.StrEnum):
    OK = "ok"
    DRIFT = "drift"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's answer. ``alert`` names the alert kind when the drift matters; ``updates``
    are the onboarding's columns a definite answer corrects."""

    check: str
    verdict: Verdict
    detail: str
    alert: str | None = None
    updates: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "alert": self.alert,
        }


def _unknown(check: str, exc: GraphError) -> Finding:
    return Finding(check, Verdict.UNKNOWN, f"Meta did not answer for certain: {exc}")


def number(graph: GraphClient, onboarding: Onboarding, token: str) -> Finding:
    """Whether the number is still on the Business app, and its ``platform_type``."""
    if onboarding.phone_number_id is None:
        return Finding("number", Verdict.UNKNOWN, "no phone number id is known")
    try:
        fields = graph.get_phone_number(onboarding.phone_number_id, token, fields=NUMBER_FIELDS)
    except GraphError as exc:
        return _unknown("number", exc)
    on_app = fields.get("is_on_biz_app")
    platform = fields.get("platform_type")
    if not isinstance(on_app, bool) or not isinstance(platform, str) or not platform:
        return Finding(
            "number", Verdict.UNKNOWN, "Meta's answer lacks is_on_biz_app or platform_type"
        )
    changes = []
    if on_app != onboarding.is_on_biz_app:
        changes.append(f"is_on_biz_app {onboarding.is_on_biz_app} -> {on_app}")
    if platform != onboarding.platform_type:
        changes.append(f"platform_type {onboarding.platform_type} -> {platform}")
    if not changes:
        return Finding("number", Verdict.OK, f"is_on_biz_app {on_app}, platform_type {platform}")
    return Finding(
        "number",
        Verdict.DRIFT,
        f"number {onboarding.phone_number_id}: " + ", ".join(changes),
        alert="number_left_coexistence" if on_app is False else None,
        updates=(("is_on_biz_app", on_app), ("platform_type", platform)),
    )


def subscription(
    graph: GraphClient, settings: Settings, onboarding: Onboarding, token: str
) -> Finding:
    """Whether our app is still subscribed to the WABA, and with which override."""
    try:
        items = graph.subscribed_apps(onboarding.waba_id, token)
    except GraphError as exc:
        return _unknown("subscription", exc)
    found = subscriptions.of_app(items, graph.app_id)
    if not found.subscribed:
        return Finding(
            "subscription",
            Verdict.DRIFT,
            f"app no longer subscribed to WABA {onboarding.waba_id}: its webhooks are not sent",
            alert="subscription_gone",
        )
    override = found.override_callback_uri
    wanted = settings.webhook_override
    if wanted is not None and override != wanted[0]:
        return Finding(
            "subscription",
            Verdict.DRIFT,
            f"webhook override of WABA {onboarding.waba_id} is {override or 'none'}, "
            f"not {wanted[0]} (COEX_WEBHOOK_OVERRIDE_URL)",
            alert="webhook_override_changed",
        )
    where = f"override {override}" if override else "the app's callback URL"
    return Finding("subscription", Verdict.OK, f"app subscribed; webhooks go to {where}")


def token_state(graph: GraphClient, token: str) -> Finding:
    """Whether Meta still accepts the business token (``debug_token``)."""
    try:
        data = graph.debug_token(token)
    except TokenInvalidError as exc:  # the app token itself was refused: a configuration issue
        return Finding("token", Verdict.UNKNOWN, f"the app token was refused: {exc}")
    except GraphError as exc:
        return _unknown("token", exc)
    valid = data.get("is_valid")
    if valid is True:
        expires = data.get("expires_at")
        when = "never expires" if expires in (0, None) else f"expires at {expires}"
        return Finding("token", Verdict.OK, f"business token valid, {when}")
    if valid is False:
        error = data.get("error")
        why = error.get("message") if isinstance(error, dict) else None
        return Finding(
            "token",
            Verdict.DRIFT,
            f"business token no longer valid: {why or 'is_valid false'}; "
            "the business must run Embedded Signup again",
            alert="token_dead",
        )
    return Finding("token", Verdict.UNKNOWN, "debug_token answered without is_valid")
