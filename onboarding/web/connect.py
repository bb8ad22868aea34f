"""The hosted signup page: ``GET /connect``, ``POST /connect/handoff``, ``GET /connect/events``.

Every route is authorised by the invitation link's ``ref``, ``exp`` and ``sig``
(:mod:`onboarding.connect.links`), never by ``COEX_SIGNUP_TOKEN``, which no page ever sees.

* ``GET /connect`` — the page (server-rendered, plain JavaScript). It loads Meta's SDK from
  ``COEX_CONNECT_SDK_URL``, launches Embedded Signup, accepts ``message`` events only from
  Facebook's origins (and the sandbox's, when ``COEX_CONNECT_SANDBOX_ORIGIN`` is set), and
  posts the code and session info to the hand-off at once (the code dies after 30 s).
* ``POST /connect/handoff`` — ``POST /signup``'s body and intake; the code exchange starts as
  soon as the answer is sent. A finish answers a watch token for the stream.
* ``GET /connect/events`` — server-sent events: the onboarding's steps as they change, read
  from the database about once a second, for at most ``COEX_CONNECT_STREAM_SECONDS`` (the
  browser's ``EventSource`` reconnects).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from config import Settings
from models import Onboarding
from onboarding.connect import service
from onboarding.connect.links import Invitation, LinkError
from onboarding.connect.progress import snapshot
from onboarding.runtime import Runtime
from onboarding.signup.intake import SignupBody
from onboarding.web.console import templates
from onboarding.web.http import problem, read_limited, run_in_thread
from onboarding.web.signup import parse_signup, recorded_answer, start_onboarding

log = structlog.get_logger(__name__)

STATIC: Final = Path(__file__).parent / "static" / "connect"
#: Meta's origins whose ``message`` events carry the session info (and any *.facebook.com).
FACEBOOK_ORIGINS: Final = ("https://www.facebook.com", "https://web.facebook.com")
POLL_SECONDS: Final = 1.0
NOT_OPEN: Final = "Signup is not open yet. Please try again later."
HEARTBEAT_SECONDS: Final = 15.0
_STATUS: Final = {
    "incomplete_link": 400,
    "invalid_link": 403,
    "expired_link": 410,
    "not_configured": 503,
    "invalid_watch": 403,
    "expired_watch": 410,
}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """Only the page's own files and the SDK's origin; Facebook's login frames may be embedded."""
    sdk = origin_of(settings.connect_sdk_url)
    frames = " ".join(dict.fromkeys([sdk, *FACEBOOK_ORIGINS]))
    return (
        f"default-src 'none'; script-src 'self' {sdk}; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; frame-src {frames}; form-action 'none'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def _headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # The link's signature is in the URL: never send it on as a Referer.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _extras(settings: Settings) -> dict[str, Any]:
    """``FB.login``'s ``extras`` (docs/meta.md#1115-the-hosted-signup-page)."""
    if settings.connect_extras == "v4":
        return {"setup": {}}
    return {
        "setup": {},
        "featureType": "whatsapp_business_app_onboarding",
        "sessionInfoVersion": "3",
    }


def _link_problem(error: LinkError) -> JSONResponse:
    return problem(_STATUS.get(error.reason, 403), error.reason, str(error))


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/connect", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        """The page a business opens from its invitation link."""
        settings = get_rt().settings
        q = request.query_params
        context: dict[str, Any] = {"error": None}
        status = 200
        try:
            invitation = service.check_link(settings, q.get("ref"), q.get("exp"), q.get("sig"))
            if not settings.meta_config_id:
                raise LinkError("not_configured", "COEX_META_CONFIG_ID is not set")
        except LinkError as error:
            # The business reads this page: a missing setting is named in the log, not here.
            context["error"] = NOT_OPEN if error.reason == "not_configured" else str(error)
            status = _STATUS.get(error.reason, 403)
            log.info("connect_link_refused", reason=error.reason, detail=str(error))
        else:
            context.update(
                ref=invitation.ref,
                exp=invitation.expires_at,
                sig=invitation.sig,
                app_id=settings.meta_app_id,
                config_id=settings.meta_config_id,
                graph_version=settings.meta_api_version,
                extras=json.dumps(_extras(settings)),
                sandbox_origin=settings.connect_sandbox_origin,
                sdk_url=settings.connect_sdk_url,
                code_ttl=settings.code_ttl_seconds,
            )
        return templates.TemplateResponse(
            request, "connect/page.html", context, status_code=status, headers=_headers(settings)
        )

    @router.post("/connect/handoff", status_code=202)
    async def handoff(request: Request) -> Response:
        """The page hands over the code and the session info of its Embedded Signup."""
        r = get_rt()
        q = request.query_params
        try:
            invitation = service.check_link(r.settings, q.get("ref"), q.get("exp"), q.get("sig"))
        except LinkError as error:
            return _link_problem(error)
        raw = await read_limited(
            request, r.settings.signup_max_body_bytes, r.settings.request_body_timeout_seconds
        )
        body = parse_signup(raw)
        if not isinstance(body, SignupBody):
            return body
        return await run_in_thread(_accept, r, body, invitation)

    @router.get("/connect/events")
    async def events(request: Request) -> Response:
        """The onboarding's steps, as server-sent ``progress`` events each time they change."""
        r = get_rt()
        q = request.query_params
        try:
            invitation = service.check_link(
                r.settings, q.get("ref"), q.get("exp"), q.get("sig"), allow_expired=True
            )
            onboarding_id = await run_in_threadpool(_watched, r, invitation, q.get("watch"))
        except LinkError as error:
            return _link_problem(error)
        return StreamingResponse(
            _stream(r, request, onboarding_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def _accept(r: Runtime, body: SignupBody, invitation: Invitation) -> Response:
    with r.db.sessionmaker() as session:
        handed = service.accept_handoff(
            session, body, invitation, settings=r.settings, cipher=r.cipher
        )
    outcome = handed.outcome
    if outcome.recorded is not None:
        return JSONResponse(recorded_answer(outcome), status_code=202)
    start = None
    if outcome.created and outcome.onboarding_id is not None:
        start = BackgroundTask(start_onboarding, outcome.onboarding_id)
    log.info("connect_handoff", onboarding_id=outcome.onboarding_id, created=outcome.created)
    return JSONResponse(
        {
            "onboarding_id": outcome.onboarding_id,
            "state": outcome.state,
            "created": outcome.created,
            "watch": handed.watch,
        },
        status_code=202,
        background=start,
    )


def _watched(r: Runtime, invitation: Invitation, token: str | None) -> int:
    with r.db.sessionmaker() as session:
        return service.watched(session, r.settings, invitation.ref, token).id


def _read(r: Runtime, onboarding_id: int) -> dict[str, Any] | None:
    with r.db.sessionmaker() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        return None if onboarding is None else snapshot(session, onboarding)


async def _stream(r: Runtime, request: Request, onboarding_id: int) -> AsyncIterator[str]:
    """Send the snapshot when it changes; end when it is final or the stream's time is up."""
    deadline = time.monotonic() + r.settings.connect_stream_seconds
    last: str | None = None
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        view = await run_in_threadpool(_read, r, onboarding_id)
        if view is None:
            yield 'event: gone\ndata: {"message": "this signup is no longer here"}\n\n'
            return
        text = json.dumps(view, separators=(",", ":"))
        if text != last:
            last = text
            quiet_since = time.monotonic()
            yield f"event: progress\ndata: {text}\n\n"
            if view["final"]:
                return
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            quiet_since = time.monotonic()
            yield ": still here\n\n"
        await asyncio.sleep(POLL_SECONDS)
