"""The admin API, ``/v1/admin/…`` (bearer ``COEX_ADMIN_TOKEN``): everything the CLI does for an
operator, through the same service layer (:mod:`onboarding.operations`, :mod:`tasks.operator`).

Every route declares its models (:mod:`.schemas`), so ``/openapi.json`` (and ``/docs``) is
the contract; errors are ``application/problem+json``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from models import InboxStatus, OnboardingState
from onboarding import operations
from onboarding.connect import service as connect
from onboarding.connect.links import LinkError, parse_lifetime
from onboarding.media_store import store_for
from onboarding.rights.export import archive_name
from onboarding.runtime import Runtime
from onboarding.signup.records import Kind, list_recorded
from onboarding.views import iso, signup_record_json
from onboarding.web.http import MAX_ROW_ID
from onboarding.web.schemas import (
    AlertOut,
    ConnectLinkAnswer,
    ConnectLinkRequest,
    EraseRequest,
    ErasureOut,
    FollowUpOut,
    InboxDeliveryOut,
    OnboardingDetail,
    OnboardingSummary,
    ReplayAnswer,
    ReplayRequest,
    RetryAnswer,
    RetryRequest,
    SignupRecordOut,
    export_answers,
    problems,
)
from tasks.operator import erase_onboarding, replay_deliveries, retry_onboarding

bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="COEX_ADMIN_TOKEN")


def admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Runtime:
    """The runtime, for a request carrying the admin token (else ``401``)."""
    r: Runtime = request.app.state.get_rt()
    expected = r.settings.admin_token.get_secret_value().encode()
    presented = (credentials.credentials if credentials else "").strip().encode()
    if not expected or not presented or not hmac.compare_digest(presented, expected):
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return r


def session(r: Annotated[Runtime, Depends(admin)]) -> Iterator[Session]:
    with r.db.sessionmaker() as s:
        yield s


AdminRuntime = Annotated[Runtime, Depends(admin)]
DbSession = Annotated[Session, Depends(session)]


def base_url(request: Request) -> str:
    """The URL this host was reached at (links fall back to it without COEX_PUBLIC_URL)."""
    return str(request.base_url)


BaseUrl = Annotated[str, Depends(base_url)]
Limit = Annotated[int, Query(ge=1, le=operations.MAX_LIMIT)]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
OptionalRowId = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
Digits = Annotated[str | None, Query(pattern=r"^[0-9]{1,32}$")]

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=problems())


@router.get("/onboardings", response_model=list[OnboardingSummary])
def list_onboardings(
    db: DbSession,
    state: OnboardingState | None = None,
    waba_id: Digits = None,
    phone_number_id: Digits = None,
    limit: Limit = 100,
) -> list[dict[str, object]]:
    """Onboardings, newest first, optionally of one state, WABA or number."""
    return operations.list_onboardings(
        db,
        state=state.value if state else None,
        waba_id=waba_id,
        phone_number_id=phone_number_id,
        limit=limit,
    )


@router.get(
    "/onboardings/{onboarding_id}",
    response_model=OnboardingDetail,
    response_model_exclude_unset=True,  # the contacts sync has no phases
    responses=problems(404),
)
def show_onboarding(db: DbSession, onboarding_id: RowId) -> dict[str, object]:
    """One onboarding: number, syncs and their phases, counts, follow-ups, timeline, alerts."""
    return operations.show_onboarding(db, onboarding_id)


@router.post(
    "/onboardings/{onboarding_id}/retry",
    response_model=RetryAnswer,
    status_code=202,
    responses=problems(404, 409),
)
def retry(
    db: DbSession, r: AdminRuntime, onboarding_id: RowId, body: RetryRequest | None = None
) -> RetryAnswer:
    """Resume a failed or stuck onboarding at the step it stopped (``409`` if unsafe)."""
    body = body or RetryRequest()
    plan = retry_onboarding(
        db,
        onboarding_id,
        settings=r.settings,
        force=body.force,
        phone_number_id=body.phone_number_id,
    )
    return RetryAnswer(onboarding_id=onboarding_id, step=plan.step.value, message=plan.message)


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    db: DbSession, onboarding_id: OptionalRowId = None, limit: Limit = 500
) -> list[dict[str, object]]:
    """Alerts raised for operators, newest first."""
    return operations.list_alerts(db, onboarding_id=onboarding_id, limit=limit)


@router.get("/inbox", response_model=list[InboxDeliveryOut])
def list_inbox(
    db: DbSession, status: InboxStatus | None = None, not_applied: bool = False, limit: Limit = 100
) -> list[dict[str, object]]:
    """Stored webhook deliveries, newest first (``not_applied``: processed, taken by no
    onboarding)."""
    return operations.list_inbox(
        db, status=status.value if status else None, not_applied=not_applied, limit=limit
    )


@router.post("/inbox/replay", response_model=ReplayAnswer, status_code=202, responses=problems(404))
def replay(db: DbSession, body: ReplayRequest) -> ReplayAnswer:
    """Process stored deliveries again (idempotent): one by id, or all in a status."""
    ids = replay_deliveries(
        db, delivery_id=body.delivery_id, status=body.status.value if body.status else None
    )
    return ReplayAnswer(replayed=len(ids), delivery_ids=ids)


@router.get("/follow-ups", response_model=list[FollowUpOut])
def list_follow_ups(
    db: DbSession, due: bool = False, onboarding_id: OptionalRowId = None, limit: Limit = 200
) -> list[dict[str, object]]:
    """Follow-ups (relink and app-open reminders), soonest first."""
    return operations.list_follow_ups(db, due=due, onboarding_id=onboarding_id, limit=limit)


@router.post(
    "/follow-ups/{follow_up_id}/ack", response_model=FollowUpOut, responses=problems(404, 409)
)
def acknowledge(db: DbSession, follow_up_id: RowId) -> dict[str, object]:
    """The business did what a reminder asked: the rest of its series is cancelled."""
    return operations.acknowledge_follow_up(db, follow_up_id)


@router.get(
    "/onboardings/{onboarding_id}/export",
    response_class=StreamingResponse,
    responses=export_answers(),
)
def export(r: AdminRuntime, onboarding_id: RowId) -> StreamingResponse:
    """Everything coexist holds for one onboarding, as one zip archive streamed as it is
    written: messages, contacts, peers, media with sha256 sums, timeline, follow-ups, alerts."""
    db = r.db.sessionmaker()
    try:
        archive = operations.export_onboarding(db, onboarding_id, store=store_for(r.settings))
    except BaseException:
        db.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from archive
        finally:
            db.close()

    name = archive_name(onboarding_id)
    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post(
    "/onboardings/{onboarding_id}/erase",
    response_model=ErasureOut,
    status_code=202,
    responses=problems(404),
)
def erase(
    db: DbSession, onboarding_id: RowId, body: EraseRequest | None = None
) -> dict[str, object]:
    """Erase the onboarding's messages, contacts, peers, media and secrets, in the background;
    the onboarding, its timeline and the erasure record stay. Asking again answers where the
    erasure stands (``done``: nothing more to do)."""
    reason = body.reason if body is not None else None
    return erase_onboarding(db, onboarding_id, reason=reason)


@router.get("/signups", response_model=list[SignupRecordOut])
def list_signups(
    db: DbSession, kind: Kind | None = None, limit: Limit = 100
) -> list[dict[str, object]]:
    """Signups recorded without an onboarding (abandoned, or another flow), newest first."""
    return [signup_record_json(row) for row in list_recorded(db, kind=kind, limit=limit)]


@router.post(
    "/connect-links", response_model=ConnectLinkAnswer, status_code=201, responses=problems(422)
)
def create_connect_link(
    r: AdminRuntime, body: ConnectLinkRequest, here: BaseUrl
) -> ConnectLinkAnswer:
    """An invitation link to the hosted signup page (``COEX_PUBLIC_URL``, else this host)."""
    try:
        made = connect.create_link(
            r.settings,
            body.ref,
            parse_lifetime(body.expires),
            fallback_base=here,
        )
    except LinkError as exc:
        raise operations.InvalidRequestError(str(exc)) from None
    return ConnectLinkAnswer(
        url=made.url,
        ref=made.invitation.ref,
        expires_at=iso(datetime.fromtimestamp(made.invitation.expires_at, UTC)) or "",
    )
