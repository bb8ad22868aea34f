"""``POST /signup``: the browser's Embedded Signup hand-off, recorded before it is answered.

Bearer ``COEX_SIGNUP_TOKEN``. The body is validated whole (``422`` naming the field), the
onboarding committed, and only then, after the ``202`` has gone out, its code exchange enqueued
on the ``signup`` queue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from onboarding.outcomes import Next
from onboarding.runtime import Runtime
from onboarding.signup.intake import (
    ONBOARD_EVENTS,
    SESSION_EVENTS,
    SignupBody,
    SignupOutcome,
    accept_signup,
    unstorable,
)
from onboarding.web.http import bearer_ok, invalid, read_limited, run_in_thread, unauthorized
from onboarding.web.openapi import errors, json_body, secured
from onboarding.web.schemas import FinishRecorded, SignupAbandoned, SignupAccepted
from tasks.base import enqueue_after_commit, enqueue_step
from tasks.ingest import wake_waiting

#: What the body's schema cannot say by itself.
BODY = (
    "What the browser received from Embedded Signup: the session-info message and, for a "
    "finish, the code. `code` is required when `session.event` is `FINISH` or "
    "`FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`. Strings are trimmed before they are checked; "
    "no key or string may hold a NUL or a lone surrogate; `NaN`, `Infinity` and numbers "
    "beyond a double are refused. Keys Meta adds inside `session` are kept."
)


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/signup",
        status_code=202,
        tags=["signup"],
        response_model=SignupAccepted | SignupAbandoned | FinishRecorded,
        responses=errors(
            400,
            401,
            408,
            413,
            422,
            503,
            s400="`Content-Length` and `Transfer-Encoding` together (`ambiguous_framing`).",
            s408="The body did not arrive in time (`body_timeout`).",
            s413="The body is over `COEX_SIGNUP_MAX_BODY_BYTES` (`too_large`).",
            s422="The body is not a JSON object of this schema (`invalid_body`); each field "
            "is named by its path, e.g. `session.data.waba_id`.",
        ),
        openapi_extra={**json_body(SignupBody, BODY), **secured("SignupToken")},
    )
    async def signup(request: Request) -> Response:
        """Embedded Signup finished (or was abandoned) in the browser."""
        r = get_rt()
        if not bearer_ok(request, r.settings.signup_token.get_secret_value()):
            return unauthorized()
        raw = await read_limited(
            request, r.settings.signup_max_body_bytes, r.settings.request_body_timeout_seconds
        )
        body = parse_signup(raw)
        if not isinstance(body, SignupBody):
            return body
        return await run_in_thread(_accept, r, body)

    return router


def parse_signup(raw: bytes) -> SignupBody | Response:
    """The hand-off body validated whole, or the ``422`` naming the field that is wrong."""
    try:
        payload: Any = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        return invalid([{"field": "body", "message": "nested too deeply"}])
    except (ValueError, UnicodeDecodeError) as exc:
        return invalid([{"field": "body", "message": f"not JSON: {exc}"}])
    if not isinstance(payload, dict):
        return invalid([{"field": "body", "message": "expected a JSON object"}])
    problem = unstorable(payload)
    if problem is not None:
        return invalid([{"field": problem[0], "message": problem[1]}])
    try:
        return SignupBody.model_validate(payload)
    except ValidationError as exc:
        return invalid(
            [
                {"field": _field(e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        )


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's discriminator tags ("FINISH") from the path: the field is what matters.
    parts = [str(p) for p in loc if p not in SESSION_EVENTS]
    return ".".join(parts) or "body"


def _no_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (Python's parser accepts them; the database not)."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    """A JSON number as a float; one beyond a double (``1e400``) would be stored as Infinity."""
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"{literal[:32]} is beyond the range of a number")
    return number


def _accept(r: Runtime, body: SignupBody) -> Response:
    """Record the signup; a new onboarding's exchange is enqueued once the answer is sent.

    The ``202`` never waits for the broker: the row is committed, which is the promise. While
    the broker is unreachable each enqueue costs most of a second of retries before it gives
    up; then beat's ``coexist.signup.resume`` sends the exchange within seconds, well inside
    the code's 30 s, as it does for a message the broker lost.
    """
    with r.db.sessionmaker() as session:
        outcome = accept_signup(session, body, settings=r.settings, cipher=r.cipher)
    if outcome.recorded is not None:
        return JSONResponse(recorded_answer(outcome), status_code=202)
    start = None
    if outcome.created and outcome.onboarding_id is not None:
        start = BackgroundTask(start_onboarding, outcome.onboarding_id)
    return JSONResponse(
        {
            "onboarding_id": outcome.onboarding_id,
            "state": outcome.state,
            "created": outcome.created,
        },
        status_code=202,
        background=start,
    )


def recorded_answer(outcome: SignupOutcome) -> dict[str, Any]:
    """The ``202`` body of a signup recorded without an onboarding.

    ``abandoned_signup_id`` (``CANCEL``, ``ERROR``) or ``recorded_finish_id`` (the other
    finishes) names the row; ``onboarded`` is false and ``message`` says why.
    """
    recorded = outcome.recorded
    assert recorded is not None
    onboard = " or ".join(ONBOARD_EVENTS)
    if recorded.kind == "abandoned":
        key = "abandoned_signup_id"
        message = f"{outcome.event}: the signup did not finish; recorded for support"
    else:
        key = "recorded_finish_id"
        message = f"{outcome.event} is recorded but not onboarded here; coexist onboards {onboard}"
    return {
        key: recorded.row_id,
        "status": "recorded",
        "event": outcome.event,
        "onboarded": False,
        "created": recorded.created,
        "message": message,
    }


def start_onboarding(onboarding_id: int) -> None:
    enqueue_step(None, Next.EXCHANGE, onboarding_id)
    enqueue_after_commit(None, wake_waiting, onboarding_id)
