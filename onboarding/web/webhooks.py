"""``GET /webhooks/meta`` (Meta's subscription handshake) and ``POST /webhooks/meta`` (deliveries).

A delivery is read within its limits, its signature checked on the raw bytes (``401`` and
nothing stored if wrong), committed to the inbox by the :class:`IntakeBatcher`, and only then
answered ``200``; its processing is enqueued on the ``ingest`` queue after the commit.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from onboarding import metrics
from onboarding.ingest.inbox import IntakeBatcher, Received
from onboarding.meta.signatures import signature_valid
from onboarding.runtime import Runtime
from onboarding.web.http import problem, read_limited
from onboarding.web.openapi import errors, query
from tasks.base import enqueue_after_commit
from tasks.ingest import process_deliveries

log = structlog.get_logger(__name__)

#: Stored deliveries are processed in tasks of at most this many (fewer broker messages).
DELIVERIES_PER_TASK = 64


#: Meta's subscription handshake, as the OpenAPI document gives it.
HANDSHAKE = {
    "parameters": [
        {**query("hub.mode", {"type": "string", "const": "subscribe"}), "required": True},
        {
            **query(
                "hub.verify_token",
                {"type": "string"},
                "`COEX_WEBHOOK_VERIFY_TOKEN` or `COEX_WEBHOOK_OVERRIDE_VERIFY_TOKEN`",
            ),
            "required": True,
        },
        {
            **query("hub.challenge", {"type": "string", "minLength": 1, "maxLength": 1024}),
            "required": True,
        },
    ]
}
#: A delivery, as the OpenAPI document gives it: Meta's JSON, stored as it came, and its
#: signature (https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
DELIVERY = {
    "parameters": [
        {
            "name": "X-Hub-Signature-256",
            "in": "header",
            "required": True,
            "description": "`sha256=` and the HMAC-SHA256 of the raw body with the app secret",
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-fA-F]{64}$"},
        }
    ],
    "requestBody": {
        "required": True,
        "description": "Meta's delivery (`object`, `entry`), stored as the bytes that came.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}
ECHO = {
    "description": "The handshake matched: `hub.challenge`, echoed.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
STORED = {
    "description": "The delivery is committed: `OK`.",
    "content": {"text/plain": {"schema": {"type": "string", "const": "OK"}}},
}


def batcher(get_rt: Callable[[], Runtime]) -> IntakeBatcher:
    """The web process's intake batcher, enqueueing processing on the ``ingest`` queue."""
    return IntakeBatcher(get_rt, enqueue_processing)


def enqueue_processing(ids: list[int]) -> None:
    """Enqueue stored deliveries for processing, :data:`DELIVERIES_PER_TASK` per task."""
    for start in range(0, len(ids), DELIVERIES_PER_TASK):
        enqueue_after_commit(None, process_deliveries, ids[start : start + DELIVERIES_PER_TASK])


def routes(get_rt: Callable[[], Runtime], intake: IntakeBatcher) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/webhooks/meta",
        tags=["webhooks"],
        response_class=Response,
        responses={
            200: ECHO,
            **errors(403, s403="The verify token or the challenge is not accepted (`forbidden`)."),
        },
        openapi_extra=HANDSHAKE,
    )
    async def verify_webhook(request: Request) -> Response:
        """Meta's subscription handshake: echo ``hub.challenge`` if the verify token matches.

        The app callback's token, or the WABA override's: Meta verifies an override URL with
        its own token when coexist sets it
        (docs/meta.md#117-subscribing-without-losing-an-override).
        """
        params = request.query_params
        settings = get_rt().settings
        accepted = [
            token.get_secret_value()
            for token in (settings.webhook_verify_token, settings.webhook_override_verify_token)
            if token.get_secret_value()
        ]
        presented = params.get("hub.verify_token", "").encode()
        challenge = params.get("hub.challenge", "")
        if (
            params.get("hub.mode") == "subscribe"
            and any(hmac.compare_digest(presented, token.encode()) for token in accepted)
            and challenge
            and len(challenge) <= 1024
        ):
            return PlainTextResponse(challenge)
        return problem(403, "forbidden", "the verify token or the challenge is not accepted")

    @router.post(
        "/webhooks/meta",
        tags=["webhooks"],
        response_class=Response,
        responses={
            200: STORED,
            **errors(
                400,
                401,
                408,
                413,
                503,
                s400="`Content-Length` and `Transfer-Encoding` together (`ambiguous_framing`).",
                s401="The signature does not match the body (`invalid_signature`).",
                s408="The body did not arrive in time (`body_timeout`).",
                s413="The body is over `COEX_WEBHOOK_MAX_BODY_BYTES` (`too_large`).",
            ),
        },
        openapi_extra=DELIVERY,
    )
    async def receive_webhook(request: Request) -> Response:
        """A signed delivery: verified, committed raw, then processed on the ingest queue."""
        r = get_rt()
        raw = await read_limited(
            request, r.settings.webhook_max_body_bytes, r.settings.request_body_timeout_seconds
        )
        secret = r.settings.meta_app_secret.get_secret_value()
        if not signature_valid(raw, request.headers.get("x-hub-signature-256"), secret):
            log.warning("webhook_signature_invalid", size=len(raw))
            metrics.DELIVERIES.labels("refused_signature").inc()
            return problem(401, "invalid_signature", "X-Hub-Signature-256 does not match the body")
        await intake.submit(
            Received(
                raw,
                signature=request.headers.get("x-hub-signature-256"),
                content_type=request.headers.get("content-type"),
            )
        )
        return PlainTextResponse("OK")

    return router
