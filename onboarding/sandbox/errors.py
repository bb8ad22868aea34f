"""Meta Graph API errors as the sandbox produces them.

Every Graph error the sandbox returns goes through :class:`GraphReplyError`, which renders Meta's
envelope (docs/meta.md#81-the-error-envelope)::

    {"error": {"message": "...", "type": "OAuthException", "code": 100,
               "error_subcode": 33, "error_data": {...}, "is_transient": true,
               "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}

Optional keys are present only when set, as on Graph. The helpers below build the errors the
sandbox shares between endpoints, with Meta's wording.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping
from typing import Any, Final

import httpx

JSON_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
FBTRACE_ALPHABET: Final = string.ascii_letters + string.digits + "-_"
FBTRACE_LENGTH: Final = 23
GRAPH_DOCS_URL: Final = "https://developers.facebook.com/docs/graph-api"


def new_fbtrace_id(rng: random.Random) -> str:
    """Return a random 23-character trace id shaped like Graph's ``fbtrace_id``."""
    return "".join(rng.choice(FBTRACE_ALPHABET) for _ in range(FBTRACE_LENGTH))


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """Build a JSON response with Graph's content type."""
    merged = {"content-type": JSON_CONTENT_TYPE}
    if headers:
        merged.update(headers)
    return httpx.Response(
        status, content=json.dumps(payload, separators=(",", ":")).encode(), headers=merged
    )


class GraphReplyError(Exception):
    """An error reply of the fake Graph: raised inside the sandbox, rendered as Meta's envelope."""

    def __init__(
        self,
        message: str,
        code: int,
        *,
        status: int = 400,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        error_data: Mapping[str, Any] | None = None,
        is_transient: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.subcode = subcode
        self.error_type = error_type
        self.error_data = dict(error_data) if error_data is not None else None
        self.is_transient = is_transient
        self.headers = dict(headers or {})

    def envelope(self, fbtrace_id: str) -> dict[str, Any]:
        """Return the JSON body Graph sends for this error."""
        error: dict[str, Any] = {"message": self.message, "type": self.error_type}
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.error_data is not None:
            error["error_data"] = self.error_data
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}

    def to_response(self, fbtrace_id: str) -> httpx.Response:
        """Render the error as an HTTP response carrying ``x-fb-trace-id``."""
        headers = {"x-fb-trace-id": fbtrace_id, **self.headers}
        return json_response(self.status, self.envelope(fbtrace_id), headers)


def unsupported_request(method: str, object_id: str) -> GraphReplyError:
    """Graph's answer for an unknown object, an object the token cannot see, or a bad method."""
    verb = method.lower()
    return GraphReplyError(
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        f"the Graph API documentation at {GRAPH_DOCS_URL}",
        100,
        subcode=33,
        error_type="GraphMethodException",
    )


def nonexisting_field(field_name: str, node_type: str) -> GraphReplyError:
    """Graph's answer for a field or edge the node type does not have."""
    return GraphReplyError(
        f"(#100) Tried accessing nonexisting field ({field_name}) on node type ({node_type})",
        100,
    )


def invalid_parameter(details: str) -> GraphReplyError:
    """The WhatsApp APIs' ``(#100) Invalid parameter`` error with ``error_data.details``."""
    return GraphReplyError(
        "(#100) Invalid parameter",
        100,
        error_data={"messaging_product": "whatsapp", "details": details},
    )


def missing_token() -> GraphReplyError:
    """No access token on a call that needs one."""
    return GraphReplyError("An access token is required to request this resource.", 104)


def invalid_token() -> GraphReplyError:
    """An access token the sandbox never issued."""
    return GraphReplyError(
        "Invalid OAuth access token - Cannot parse access token", 190, status=401
    )


def missing_appsecret_proof() -> GraphReplyError:
    """A call without ``appsecret_proof`` to an app that requires it ("Require App Secret")."""
    return GraphReplyError(
        "API calls from the server require an appsecret_proof argument",
        100,
        error_type="GraphMethodException",
    )


def invalid_appsecret_proof() -> GraphReplyError:
    """A call whose ``appsecret_proof`` is not the HMAC of its token with the app secret."""
    return GraphReplyError(
        "Invalid appsecret_proof provided in the API argument",
        100,
        error_type="GraphMethodException",
    )


def revoked_token(app_id: str) -> GraphReplyError:
    """An access token the sandbox issued and later revoked."""
    return GraphReplyError(
        f"Error validating access token: The user has not authorized application {app_id}.",
        190,
        status=401,
        subcode=458,
    )
