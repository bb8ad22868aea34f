"""The operator's status API (bearer ``COEX_ADMIN_TOKEN``).

``GET /onboardings/{id}`` returns the same JSON as ``coexist onboardings show --json``;
``GET /signups?kind=&limit=`` the same as ``coexist signups list --json`` (signups recorded
without an onboarding: abandoned, or finished in a flow coexist does not onboard);
``POST /follow-ups/{id}/ack`` records that the business did what a reminder asked. An id no
row can have (outside 1 to 2**63 - 1) is ``404``, like an id no row has.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

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


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get("/onboardings/{onboarding_id}")
    async def show(onboarding_id: int, request: Request) -> Response:
        """Operator status API: the onboarding's state, syncs and timeline."""
        r = get_rt()
        if not bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return unauthorized()
        if not 0 < onboarding_id <= MAX_ROW_ID:
            return not_found()
        return await run_in_thread(_show, r, onboarding_id)

    @router.get("/signups")
    async def signups(request: Request, kind: str | None = None, limit: str = "100") -> Response:
        """Operator status API: signups recorded without an onboarding, newest first."""
        r = get_rt()
        if not bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return unauthorized()
        query = _signups_query(kind, limit)
        if isinstance(query, Response):
            return query
        return await run_in_thread(_signups, r, *query)

    @router.post("/follow-ups/{follow_up_id}/ack")
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
