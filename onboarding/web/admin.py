"""The operator's status API (bearer ``COEX_ADMIN_TOKEN``).

``GET /onboardings/{id}`` returns the same JSON as ``coexist onboardings show --json``;
``GET /signups?kind=&limit=`` the same as ``coexist signups list --json`` (signups recorded
without an onboarding: abandoned, or finished in a flow coexist does not onboard);
``POST /follow-ups/{id}/ack`` records that the business did what a reminder asked. An id no
row can have (outside 1 to 2**63 - 1) is ``404``, like an id no row has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import WithJsonSchema

from models import Onboarding
from onboarding.followups.schedule import FollowUpError, acknowledge
from onboarding.runtime import Runtime
from onboarding.signup.records import KINDS, Kind, list_recorded
from onboarding.views import follow_up_json, onboarding_detail, signup_record_json
from onboarding.web.http import (
    MAX_ROW_ID,
    bearer_ok,
    invalid,
    not_found,
    problem,
    run_in_thread,
    unauthorized,
)
from onboarding.web.openapi import errors, secured
from onboarding.web.schemas import FollowUpOut, OnboardingDetail, SignupRecordOut

ADMIN_TOKEN = secured("AdminToken")
#: ``kind`` and ``limit`` are read as text (so one ``422`` names both) but documented as they
#: are checked.
KindParameter = Annotated[str | None, WithJsonSchema({"type": "string", "enum": list(KINDS)})]
LimitParameter = Annotated[
    str, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100})
]
NOT_FOUND = "No such row (or an id no row can have)."


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/onboardings/{onboarding_id}",
        tags=["admin"],
        response_model=OnboardingDetail,
        responses=errors(401, 404, 422, 503, s404=NOT_FOUND),
        openapi_extra=ADMIN_TOKEN,
    )
    async def show(onboarding_id: int, request: Request) -> Response:
        """Operator status API: the onboarding's state, syncs and timeline."""
        r = get_rt()
        if not bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return unauthorized()
        if not 0 < onboarding_id <= MAX_ROW_ID:
            return not_found()
        return await run_in_thread(_show, r, onboarding_id)

    @router.get(
        "/signups",
        tags=["admin"],
        response_model=list[SignupRecordOut],
        responses=errors(401, 422, 503),
        openapi_extra=ADMIN_TOKEN,
    )
    async def signups(
        request: Request, kind: KindParameter = None, limit: LimitParameter = "100"
    ) -> Response:
        """Operator status API: signups recorded without an onboarding, newest first."""
        r = get_rt()
        if not bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return unauthorized()
        query = _signups_query(kind, limit)
        if isinstance(query, Response):
            return query
        return await run_in_thread(_signups, r, *query)

    @router.post(
        "/follow-ups/{follow_up_id}/ack",
        tags=["admin"],
        response_model=FollowUpOut,
        responses=errors(
            401, 404, 409, 422, 503, s409="The follow-up is no longer pending.", s404=NOT_FOUND
        ),
        openapi_extra=ADMIN_TOKEN,
    )
    async def ack_follow_up(follow_up_id: int, request: Request) -> Response:
        """The provider's app reports the business did what a reminder asked (admin bearer)."""
        r = get_rt()
        if not bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return unauthorized()
        if not 0 < follow_up_id <= MAX_ROW_ID:
            return not_found()
        return await run_in_thread(_ack, r, follow_up_id)

    return router


def _ack(r: Runtime, follow_up_id: int) -> Response:
    with r.db.sessionmaker() as session:
        try:
            follow_up = acknowledge(session, follow_up_id)
        except FollowUpError as exc:
            status = 404 if "no follow-up" in str(exc) else 409
            return problem(status, "not_acknowledged", str(exc))
        return JSONResponse(follow_up_json(follow_up))


def _show(r: Runtime, onboarding_id: int) -> Response:
    with r.db.sessionmaker() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        if onboarding is None:
            return not_found()
        return JSONResponse(onboarding_detail(session, onboarding))


def _signups_query(kind: str | None, limit: str) -> tuple[Kind | None, int] | Response:
    """``kind`` and ``limit`` checked, or ``422`` naming each bad one."""
    errors = []
    if kind is not None and kind not in KINDS:
        errors.append({"field": "kind", "message": f"one of {', '.join(KINDS)}"})
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 5 and 1 <= int(limit) <= 10_000):
        errors.append({"field": "limit", "message": "a whole number from 1 to 10000"})
    if errors:
        return invalid(errors)
    chosen: Kind | None = None
    for known in KINDS:
        if kind == known:
            chosen = known
    return chosen, int(limit)


def _signups(r: Runtime, kind: Kind | None, limit: int) -> Response:
    with r.db.sessionmaker() as session:
        rows = list_recorded(session, kind=kind, limit=limit)
        return JSONResponse([signup_record_json(row) for row in rows])
