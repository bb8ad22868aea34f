"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

The key is the app secret. The signature covers the exact bytes Meta sent, so it is checked
before anything is parsed (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads).
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
