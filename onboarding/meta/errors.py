"""The Graph API's errors, as a small exception tree chosen by Meta's error ``code``.

Meta's error envelope (``{"error": {"message", "type", "code", "error_subcode",
"error_data", "fbtrace_id"}}``) becomes an exception chosen by the error ``code``, never by
HTTP status or message text, which Meta changes freely (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)::

    GraphError                        code, subcode, fbtrace_id, endpoint, http_status
    ├── TransientGraphError           1, 2, 131016, 133004, 131000, 131057, HTTP 5xx
    │   ├── RateLimitedError          4, 80007, 130429, 131056, 131048, 133016 (retry_after)
    │   └── GraphTransportError       no answer: connect error, timeout, dropped connection
    └── PermanentGraphError
        ├── TokenInvalidError         190
        ├── GraphPermissionError      0, 3, 10, 200-299, 131005
        ├── BadRequestError           100, 131008, 131009, and unclassified 4xx
        │   └── CodeExchangeError     100 on /oauth/access_token: code expired, used or bad
        ├── PolicyError               368, 131031, 130497
        ├── BsuidRecipientError       131062: this message cannot go to a BSUID; send by number
        ├── MalformedResponseError    a 2xx whose body is not the documented shape
        ├── MediaTooLargeError        media over the configured size limit
        └── OneShotError              smb_app_data may be called once per type, within 24 h
            ├── SyncAlreadyRequestedError   2593107
            └── SyncWindowClosedError       2593108

``GraphTransportError.maybe_applied`` and ``TransientGraphError.maybe_applied`` tell whether a
non-idempotent call may have taken effect; the sync trigger relies on it.
"""

from __future__ import annotations

from typing import Any

RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056, 131048, 133016})
TRANSIENT_CODES = frozenset({1, 2, 131016, 133004, 131000, 131057})
PERMISSION_CODES = frozenset({0, 3, 10, 131005, *range(200, 300)})
BAD_REQUEST_CODES = frozenset({100, 131008, 131009})
POLICY_CODES = frozenset({368, 131031, 130497})
SYNC_TOO_MANY = 2593107
SYNC_WINDOW_CLOSED = 2593108
HISTORY_DECLINED = 2593109
BSUID_RECIPIENT_UNSUPPORTED = 131062


class GraphError(Exception):
    """A Graph API call failed. Carries what support and Meta's support need."""

    #: Whether a non-idempotent call may have taken effect despite this error.
    maybe_applied = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        endpoint: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.endpoint = endpoint
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.subcode is not None:
            parts.append(f"subcode={self.subcode}")
        if self.details:
            parts.append(f"details={self.details!r}")
        if self.endpoint:
            parts.append(f"endpoint={self.endpoint}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        return " ".join(parts)

    def log_fields(self) -> dict[str, Any]:
        return {
            "error_class": type(self).__name__,
            "graph_code": self.code,
            "graph_subcode": self.subcode,
            "fbtrace_id": self.fbtrace_id,
            "endpoint": self.endpoint,
            "http_status": self.http_status,
            "error_message": self.message,
        }


class TransientGraphError(GraphError):
    """Worth retrying later: Meta was down, overloaded or answered an unknown error."""

    maybe_applied = True  # a 5xx on a POST may still have been applied


class RateLimitedError(TransientGraphError):
    """Throttled. ``retry_after`` (seconds) comes from Meta's usage headers when present."""

    maybe_applied = False

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class GraphTransportError(TransientGraphError):
    """No answer. ``maybe_applied`` is False only when the request never left."""

    def __init__(self, message: str, *, maybe_applied: bool, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.maybe_applied = maybe_applied


class PermanentGraphError(GraphError):
    """Retrying cannot help: something must change first (a token, a permission, input)."""


class TokenInvalidError(PermanentGraphError):
    """190: the business token is dead; the business must redo Embedded Signup."""


class GraphPermissionError(PermanentGraphError):
    """The token lacks a permission or the app lacks access."""


class BadRequestError(PermanentGraphError):
    """Bad or missing parameter, or an object the token cannot see."""


class CodeExchangeError(BadRequestError):
    """The signup code was refused: expired (36007), already used (36009) or invalid."""


class PolicyError(PermanentGraphError):
    """Policy restriction or account lock."""


class BsuidRecipientError(PermanentGraphError):
    """131062: Meta does not deliver this message to a business-scoped user id (``recipient``),
    e.g. some authentication templates; only its phone number (``to``) can receive it
    (docs/meta.md#1112-sending-to-a-business-scoped-user-id)."""


class MalformedResponseError(PermanentGraphError):
    """Meta answered 2xx with a body that is not the documented shape."""


class MediaTooLargeError(PermanentGraphError):
    """The media is larger than the configured limit."""


class OneShotError(PermanentGraphError):
    """An ``smb_app_data`` rule: once per sync type, within 24 h of onboarding."""


class SyncAlreadyRequestedError(OneShotError):
    """2593107: this sync type was already requested for this onboarding."""


class SyncWindowClosedError(OneShotError):
    """2593108: more than 24 h have passed since onboarding."""


def classify(code: int | None, http_status: int, endpoint: str) -> type[GraphError]:
    if code == SYNC_TOO_MANY:
        return SyncAlreadyRequestedError
    if code == SYNC_WINDOW_CLOSED:
        return SyncWindowClosedError
    if code in RATE_LIMIT_CODES:
        return RateLimitedError
    if code == BSUID_RECIPIENT_UNSUPPORTED:
        return BsuidRecipientError
    if code == 190:
        return TokenInvalidError
    if code in TRANSIENT_CODES:
        return TransientGraphError
    if code in PERMISSION_CODES:
        return GraphPermissionError
    if code in POLICY_CODES:
        return PolicyError
    if code in BAD_REQUEST_CODES:
        return CodeExchangeError if endpoint == "oauth/access_token" else BadRequestError
    if http_status >= 500 or http_status == 429:
        return RateLimitedError if http_status == 429 else TransientGraphError
    return BadRequestError
