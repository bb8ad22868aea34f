"""``GET /{ver}/debug_token?input_token=…``: what Meta knows of an access token.

Called with the app token (``{app-id}|{app-secret}``). Answers ``{"data": {...}}`` with
``app_id``, ``type``, ``application``, ``expires_at`` (0: never), ``is_valid``, ``scopes`` and
``user_id`` for a live business token; a revoked or unknown token is answered 200 with
``is_valid: false`` and an ``error`` object, as Graph does
(https://developers.facebook.com/docs/graph-api/reference/debug_token).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final

import httpx

from onboarding.sandbox.auth import bearer, check_proof
from onboarding.sandbox.errors import GraphReplyError, invalid_token
from onboarding.sandbox.routes import Route, ok
from onboarding.sandbox.world import World

BUSINESS_SCOPES: Final = ("whatsapp_business_management", "whatsapp_business_messaging")


def debug_token(
    world: World, request: httpx.Request, route: Route, params: Mapping[str, Any]
) -> httpx.Response:
    """Answer ``debug_token`` for a caller holding the app token."""
    rules = world.rules
    raw = bearer(request, params)
    app_token = f"{rules.app_id}|{rules.app_secret}"
    if not hmac.compare_digest(raw.encode(), app_token.encode()):
        if raw in world.tokens:
            raise GraphReplyError(
                "(#100) You must provide an app access token, or a user access token that is "
                "an owner or developer of the app",
                100,
            )
        raise invalid_token()
    check_proof(world, raw, params)
    input_token = params.get("input_token")
    if not input_token or not isinstance(input_token, str):
        raise GraphReplyError("(#100) The parameter input_token is required", 100)
    return ok({"data": _describe(world, input_token)}, route)


def _describe(world: World, input_token: str) -> dict[str, Any]:
    rules = world.rules
    token = world.tokens.get(input_token)
    if token is None:
        return {
            "error": {"code": 190, "message": "Invalid OAuth access token."},
            "is_valid": False,
            "scopes": [],
        }
    data: dict[str, Any] = {
        "app_id": rules.app_id,
        "type": "SYSTEM_USER",
        "application": rules.app_name,
        "data_access_expires_at": 0,
        "expires_at": 0,
        "is_valid": not token.revoked,
        "scopes": [] if token.revoked else list(BUSINESS_SCOPES),
        "user_id": token.business_id,
    }
    if token.revoked:
        data["error"] = {
            "code": 190,
            "message": "Error validating access token: "
            f"The user has not authorized application {rules.app_id}.",
            "subcode": 458,
        }
    return data
