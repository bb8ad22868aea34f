"""What a follow-up says: its subject, text and facts, rendered once for every channel.

:func:`render` owns the words of the relink and app-open reminders and of operator alerts; it
reads the follow-up's stored ``content`` (the scheduler's) and the onboarding, and never fails
on content it does not know (unknown keys join the facts, a missing list falls back on
:mod:`.rules`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from models import Alert, FollowUp, FollowUpKind, Onboarding, utcnow
from onboarding.followups.rules import (
    INACTIVITY_DISCONNECT_DAYS,
    SUPPORTED_COMPANIONS,
    UNSUPPORTED_COMPANIONS,
)


@dataclass(frozen=True)
class RenderedFollowUp:
    """A follow-up rendered once for every channel."""

    follow_up_id: int
    kind: str
    subject: str
    text: str
    facts: dict[str, Any]
    #: The business's number, digits only (the WhatsApp recipient); None when unknown.
    recipient: str | None
    #: The idempotency key of this (follow-up, channel) notification, set by the notifier.
    key: str = ""


def render(
    follow_up: FollowUp,
    onboarding: Onboarding,
    *,
    alert: Alert | None = None,
    now: datetime | None = None,
) -> RenderedFollowUp:
    """The subject, text and facts of ``follow_up``.

    ``content["subject"]`` and ``content["text"]`` win when the scheduler wrote them; other
    content keys join the facts.
    """
    now = now or utcnow()
    content = dict(follow_up.content or {})
    facts = _facts(follow_up, onboarding, content)
    number = onboarding.display_phone_number or "your number"
    if follow_up.kind == FollowUpKind.COMPANION_RELINK:
        subject, text = _relink_text(number, content)
    elif follow_up.kind == FollowUpKind.APP_OPEN:
        days = _days_without_activity(onboarding, content, now)
        left = max(0, INACTIVITY_DISCONNECT_DAYS - days)
        facts.update(days_without_activity=days, days_until_disconnect=left)
        subject, text = _heartbeat_text(number, days, left)
    elif follow_up.kind == FollowUpKind.ALERT:
        alert_kind = str(content.get("alert_kind") or (alert.kind if alert else "alert"))
        message = str(content.get("message") or (alert.message if alert else "") or alert_kind)
        severity = str(content.get("severity") or (alert.severity if alert else "warning"))
        facts.update(alert_id=follow_up.series, alert_kind=alert_kind, severity=severity)
        subject = f"coexist {severity}: {alert_kind} (onboarding {onboarding.id}, {number})"
        text = message
    else:
        subject, text = f"coexist follow-up: {follow_up.kind}", str(content)
    digits = re.sub(r"\D", "", onboarding.display_phone_number or "")
    return RenderedFollowUp(
        follow_up_id=follow_up.id,
        kind=follow_up.kind,
        subject=str(content.get("subject") or subject),
        text=str(content.get("text") or text),
        facts=facts,
        recipient=digits or None,
    )


def _facts(
    follow_up: FollowUp, onboarding: Onboarding, content: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored content's own keys and facts, then the follow-up's and onboarding's ids."""
    facts: dict[str, Any] = {
        k: v for k, v in content.items() if k not in ("subject", "text", "facts")
    }
    if isinstance(content.get("facts"), Mapping):
        facts.update(content["facts"])
    facts.update(
        {
            "follow_up_id": follow_up.id,
            "kind": follow_up.kind,
            "series": follow_up.series,
            "step": follow_up.step,
            "due_at": follow_up.due_at.isoformat(),
            "onboarding_id": onboarding.id,
            "waba_id": onboarding.waba_id,
            "phone_number_id": onboarding.phone_number_id,
            "display_phone_number": onboarding.display_phone_number,
            "verified_name": onboarding.verified_name,
        }
    )
    return facts


def _relink_text(number: str, content: Mapping[str, Any]) -> tuple[str, str]:
    supported = _names(content.get("supported"), SUPPORTED_COMPANIONS)
    unsupported = _names(content.get("unsupported"), UNSUPPORTED_COMPANIONS)
    why = (
        "was reconnected to the WhatsApp Business Platform"
        if content.get("reason") == "reconnected"
        else "is now connected to the WhatsApp Business Platform"
    )
    text = (
        f"Your WhatsApp Business number {number} {why}. Connecting it logged out your linked "
        "devices (WhatsApp Web and the desktop apps). "
        "To link a device again, open the WhatsApp Business app on your phone, tap "
        "Settings > Linked devices > Link a device, and scan the QR code the device shows. "
        f"These work alongside the platform: {', '.join(supported)}. "
        f"These do not: {', '.join(unsupported)} (chats there show placeholders instead of "
        "messages). You can link up to 4 devices."
    )
    return "Link your WhatsApp devices again", text


def _heartbeat_text(number: str, days: int, left: int) -> tuple[str, str]:
    if left > 0:
        risk = (
            f"Meta disconnects the number from the WhatsApp Business Platform after about "
            f"{INACTIVITY_DISCONNECT_DAYS} days without the app being opened: about {left} "
            f"day{'s' if left != 1 else ''} left."
        )
    else:
        risk = (
            f"Meta disconnects the number from the WhatsApp Business Platform after about "
            f"{INACTIVITY_DISCONNECT_DAYS} days without the app being opened: it may be "
            "disconnected at any moment."
        )
    text = (
        f"The WhatsApp Business app for {number} has not been opened for {days} "
        f"day{'s' if days != 1 else ''}. {risk} Open the WhatsApp Business app on your phone "
        "now, and keep opening it regularly, to stay connected."
    )
    return "Open the WhatsApp Business app to stay connected", text


def _names(value: Any, default: Sequence[str]) -> list[str]:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return list(default)


def _days_without_activity(
    onboarding: Onboarding, content: Mapping[str, Any], now: datetime
) -> int:
    basis = onboarding.last_app_activity_at
    if basis is None and isinstance(content.get("last_activity_at"), str):
        try:
            basis = datetime.fromisoformat(content["last_activity_at"])
        except ValueError:
            basis = None
    if basis is not None and basis.tzinfo is not None:
        return max(0, (now - basis) // timedelta(days=1))
    days = content.get("days_without_activity")
    return int(days) if isinstance(days, int | float) else 0
