"""Who may call the fake Graph: the signup code exchange and the business tokens it mints.

``GET|POST /{ver}/oauth/access_token`` exchanges a single-use code (``code_ttl``, 30 seconds)
for a business token, checking the app's id and secret; every other Graph call must carry a
token, as ``Authorization: Bearer`` (or ``OAuth``) or ``access_token``. With the app setting
"Require App Secret" (``require_appsecret_proof``), a call carrying a token must also carry
``appsecret_proof`` or is refused with Meta's ``GraphMethodException`` code 100.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import httpx

from onboarding.sandbox.errors import (
    GraphReplyError,
    invalid_appsecret_proof,
    invalid_token,
    missing_appsecret_proof,
    missing_token,
    revoked_token,
)
from onboarding.sandbox.routes import Route, ok
from onboarding.sandbox.world import BusinessToken, World


def bearer(request: httpx.Request, params: Mapping[str, Any]) -> str:
    """The access token the call carries (``Authorization`` or ``access_token``), or Graph's
    error when there is none or the header is not a bearer."""
    header = request.headers.get("authorization")
    raw: Any
    if header is not None:
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() not in {"bearer", "oauth"}:
            raise invalid_token()
        raw = raw.strip()
    else:
        raw = params.get("access_token")
    if not raw or not isinstance(raw, str):
        raise missing_token()
    return raw


def authenticate(world: World, request: httpx.Request, params: Mapping[str, Any]) -> BusinessToken:
    """The caller's business token, or Graph's error for a missing, unknown or revoked one,
    or for a missing or wrong ``appsecret_proof`` when the app requires it."""
    raw = bearer(request, params)
    token = world.tokens.get(raw)
    if token is None:
        raise invalid_token()
    if token.revoked:
        raise revoked_token(world.rules.app_id)
    check_proof(world, raw, params)
    return token


def check_proof(world: World, raw_token: str, params: Mapping[str, Any]) -> None:
    """With "Require App Secret" on, the call must carry ``appsecret_proof``: the hex
    HMAC-SHA256 of its access token keyed by the app secret."""
    if not world.rules.require_appsecret_proof:
        return
    proof = params.get("appsecret_proof")
    if not proof:
        raise missing_appsecret_proof()
    expected = hmac.new(
        world.rules.app_secret.encode(), raw_token.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(str(proof).encode(), expected.encode()):
        raise invalid_appsecret_proof()


def exchange_code(world: World, params: Mapping[str, Any], route: Route) -> httpx.Response:
    """``/oauth/access_token``: a business token for a valid, unused, unexpired code."""
    rules = world.rules
    for name in ("client_id", "client_secret", "code"):
        if not params.get(name):
            raise GraphReplyError(f"Missing {name} parameter.", 100)
    if str(params["client_id"]) != rules.app_id:
        raise GraphReplyError("Error validating application. Invalid application ID.", 101)
    if not hmac.compare_digest(str(params["client_secret"]).encode(), rules.app_secret.encode()):
        raise GraphReplyError("Error validating client secret.", 1)
    record = world.codes.get(str(params["code"]))
    if record is None:
        raise GraphReplyError("Invalid verification code format.", 100, subcode=36008)
    if record.used:
        raise GraphReplyError("This authorization code has been used.", 100, subcode=36009)
    if world.now() - record.issued_at > rules.code_ttl:
        raise GraphReplyError("This authorization code has expired.", 100, subcode=36007)
    record.used = True
    token = world.mint_token(record.business_id)
    return ok({"access_token": token, "token_type": "bearer"}, route)
