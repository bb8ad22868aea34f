"""Standard Webhooks signing for the requests coexist sends to the provider: the feed's push
(:mod:`onboarding.feed.push`) and the notifier's ``webhook`` channel.

Each request carries three headers (https://www.standardwebhooks.com/):

* ``webhook-id`` — the message's id, the same on every retry of that message: the receiver
  drops a copy it already has;
* ``webhook-timestamp`` — the attempt's time, whole seconds since the epoch: the receiver
  refuses one too far from its clock (the ``standardwebhooks`` package allows five minutes);
* ``webhook-signature`` — ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with
  the secret's bytes.

The scheme is the ``standardwebhooks`` package's own; coexist only chooses the id and the body.
Secrets are ``whsec_`` and the base64 of 24 to 64 random bytes
(:func:`config.settings.whsec_problem`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from standardwebhooks.webhooks import Webhook

from config.logging import register_secret
from config.settings import WHSEC_EXAMPLE, whsec_problem

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"


class Signer:
    """Signs request bodies with one ``whsec_`` secret."""

    def __init__(self, secret: str) -> None:
        problem = whsec_problem(secret)
        if problem:
            raise ValueError(f"a Standard Webhooks secret {problem} ({WHSEC_EXAMPLE})")
        register_secret(secret)
        self._webhook = Webhook(secret)

    def headers(self, message_id: str, body: str, *, at: datetime | None = None) -> dict[str, str]:
        """The three signing headers for ``body`` sent as message ``message_id`` now."""
        at = (at or datetime.now(UTC)).astimezone(UTC)
        return {
            ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(int(at.timestamp())),
            SIGNATURE_HEADER: self._webhook.sign(message_id, at, body),
        }
