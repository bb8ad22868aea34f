"""The console's session and CSRF tokens, signed with the admin token.

Logging in with ``COEX_ADMIN_TOKEN`` gives a cookie ``coexist_console`` =
``<expires>.<nonce>.<signature>`` (HMAC-SHA256 keyed by a key derived from the admin token):
``HttpOnly``, ``SameSite=Strict``, ``Path=/console``, ``Secure`` unless the environment is
development over plain HTTP. Changing the admin token ends every session. Every form that acts
carries a CSRF token derived from the session's nonce (checked in constant time), on top of
``SameSite=Strict`` and a same-origin check of ``Origin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "coexist_console"
#: Seconds a console session lasts.
SESSION_SECONDS = 12 * 3600


def _key(admin_token: str) -> bytes:
    return hashlib.sha256(b"coexist console session\x00" + admin_token.encode()).digest()


def _sign(admin_token: str, message: str) -> str:
    return hmac.new(_key(admin_token), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    nonce: str
    expires: int


def issue(admin_token: str, now: float | None = None) -> tuple[str, ConsoleSession]:
    """A new session: the cookie's value and the session it stands for."""
    session = ConsoleSession(secrets.token_urlsafe(18), int(now or time.time()) + SESSION_SECONDS)
    message = f"{session.expires}.{session.nonce}"
    return f"{message}.{_sign(admin_token, message)}", session


def read(admin_token: str, cookie: str | None, now: float | None = None) -> ConsoleSession | None:
    """The session a cookie stands for, if it is ours, intact and not expired."""
    if not cookie or not admin_token:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expires, nonce, signature = parts
    if not hmac.compare_digest(signature, _sign(admin_token, f"{expires}.{nonce}")):
        return None
    if int(expires) < (now or time.time()):
        return None
    return ConsoleSession(nonce, int(expires))


def csrf_token(admin_token: str, session: ConsoleSession) -> str:
    """The token every acting form of this session carries."""
    return _sign(admin_token, f"csrf.{session.nonce}")


def csrf_ok(admin_token: str, session: ConsoleSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(
        presented or "", csrf_token(admin_token, session)
    )
