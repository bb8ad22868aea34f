"""The app secret's two HMACs: Meta's webhook signature and our ``appsecret_proof``.

``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, keyed by the app secret,
covers the exact bytes Meta sent, so it is checked before anything is parsed
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads).

``appsecret_proof`` is the hex HMAC-SHA256 of an access token keyed by the app secret; sent with
a Graph call, it shows the call comes from the app's server (docs/meta.md#118-appsecret_proof,
https://developers.facebook.com/docs/graph-api/security#appsecret_proof).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def signature_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` is the HMAC-SHA256 of ``body`` with ``app_secret`` (constant time)."""
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    presented = header[len(SIGNATURE_PREFIX) :].strip().lower()
    if len(presented) != 64:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(presented.encode(), expected.encode())


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """The ``appsecret_proof`` Graph expects with ``access_token``: hex HMAC-SHA256."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
