"""Webhook bodies as Meta sends them: the exact bytes, and their ``X-Hub-Signature-256``.

A body is serialized once (compact JSON, non-ASCII escaped as ``\\uXXXX`` with lowercase hex, as
Meta signs it) and signed with HMAC-SHA256 keyed with the app secret.
"""

from __future__ import annotations

import hmac
import json
from hashlib import sha256
from typing import Any, Final

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"


def sign_body(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` is the valid ``X-Hub-Signature-256`` of ``body`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(header.strip().encode(), sign_body(body, app_secret).encode())


def serialize(payload: Any) -> bytes:
    """Compact JSON with non-ASCII escaped in lowercase hex, the bytes Meta signs."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")
