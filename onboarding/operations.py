"""What operators do, whichever way they do it: the CLI (``coexist``), the admin API
(``/v1/admin/…``) and the console call these functions, so each answers the same.

Reads return the JSON of :mod:`onboarding.views`. Actions that start work return what the caller
must enqueue (the domain never imports tasks): :mod:`tasks.operator` does both for the entry
points. Every refusal is an :class:`OperatorError` whose ``error`` and ``status`` an HTTP answer
uses and whose message the CLI prints.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from models import (
    Alert,
    FollowUp,
    FollowUpStatus,
    InboxDelivery,
    InboxStatus,
    Onboarding,
    OnboardingState,
    utcnow,
)
from onboarding.followups.schedule import FollowUpError, acknowledge
from onboarding.ingest.dispatch import replay
from onboarding.ingest.retention import BodyDroppedError
from onboarding.media_store import MediaStore
from onboarding.rights import erase
from onboarding.rights.export import Export, OnboardingNotFoundError, export_archive
from onboarding.sync.retry import RetryPlan, RetryRefusedError, retry
from onboarding.views import (
    alert_json,
    follow_up_json,
    inbox_json,
    onboarding_detail,
    onboarding_summary,
)

#: The most rows one listing returns.
MAX_LIMIT = 10_000


class OperatorError(Exception):
    """An operator's request that cannot be done; the message says why."""

    status: ClassVar[int] = 409
    error: ClassVar[str] = "refused"


class NotFoundError(OperatorError):
    status = 404
    error = "not_found"


class InvalidRequestError(OperatorError):
    status = 422
    error = "invalid_request"


class RefusedError(OperatorError):
    """Doing it would be unsafe or pointless (a retry that could double a one-shot call)."""


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be from 1 to {MAX_LIMIT}")
    return limit


def _state(state: str | None) -> str | None:
    if state is not None and state not in {s.value for s in OnboardingState}:
        known = ", ".join(s.value for s in OnboardingState)
        raise InvalidRequestError(f"unknown state {state!r}; known: {known}")
    return state


def _inbox_status(status: str | None) -> str | None:
    if status is not None and status not in {s.value for s in InboxStatus}:
        known = ", ".join(s.value for s in InboxStatus)
        raise InvalidRequestError(f"unknown status {status!r}; known: {known}")
    return status


def list_onboardings(
    session: Session,
    *,
    state: str | None = None,
    waba_id: str | None = None,
    phone_number_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Onboardings, newest first, optionally of one state, WABA or number."""
    query = select(Onboarding).order_by(Onboarding.id.desc()).limit(_limit(limit))
    if _state(state) is not None:
        query = query.where(Onboarding.state == state)
    if waba_id is not None:
        query = query.where(Onboarding.waba_id == waba_id)
    if phone_number_id is not None:
        query = query.where(Onboarding.phone_number_id == phone_number_id)
    return [onboarding_summary(o) for o in session.scalars(query)]


def show_onboarding(session: Session, onboarding_id: int) -> dict[str, Any]:
    """One onboarding as ``show --json`` prints it."""
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        raise NotFoundError(f"no onboarding {onboarding_id}")
    return onboarding_detail(session, onboarding)


def export_onboarding(session: Session, onboarding_id: int, *, store: MediaStore) -> Export:
    """Everything held for one onboarding, as a zip archive to iterate (README, "Data
    rights")."""
    try:
        return export_archive(session, onboarding_id, store=store)
    except OnboardingNotFoundError as exc:
        raise NotFoundError(str(exc)) from None


#: The longest reason an erasure request may give.
MAX_REASON = 2000


def request_erasure(
    session: Session, onboarding_id: int, *, reason: str | None = None
) -> dict[str, Any]:
    """Record an operator's erasure of one onboarding's data (committed) and return the record
    as JSON; the caller enqueues :func:`onboarding.rights.erase.advance`. Asking again
    returns the same record (running, or done: nothing more to do) (README, "Data rights")."""
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequestError(f"reason must be at most {MAX_REASON} characters")
    try:
        erasure = erase.request_erasure(
            session, onboarding_id, requested_by=erase.BY_OPERATOR, reason=reason or None
        )
    except OnboardingNotFoundError as exc:
        raise NotFoundError(str(exc)) from None
    return erase.erasure_json(erasure)


def list_alerts(
    session: Session, *, onboarding_id: int | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Alerts raised for operators, newest first."""
    query = select(Alert).order_by(Alert.id.desc()).limit(_limit(limit))
    if onboarding_id is not None:
        query = query.where(Alert.onboarding_id == onboarding_id)
    return [alert_json(a) for a in session.scalars(query)]


def list_inbox(
    session: Session,
    *,
    status: str | None = None,
    not_applied: bool = False,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Stored webhook deliveries, newest first; ``not_applied``: processed ones no onboarding
    took (e.g. ``account_update`` for a WABA coexist does not onboard)."""
    query = select(InboxDelivery).order_by(InboxDelivery.id.desc()).limit(_limit(limit))
    if _inbox_status(status) is not None:
        query = query.where(InboxDelivery.status == status)
    if not_applied:
        query = query.where(
            InboxDelivery.status == InboxStatus.PROCESSED.value,
            InboxDelivery.onboarding_id.is_(None),
        )
    return [inbox_json(d) for d in session.scalars(query)]


def list_follow_ups(
    session: Session,
    *,
    due: bool = False,
    onboarding_id: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Follow-ups, soonest first; ``due``: scheduled ones whose time has come."""
    query = select(FollowUp).order_by(FollowUp.due_at, FollowUp.id).limit(_limit(limit))
    if due:
        query = query.where(
            FollowUp.status == FollowUpStatus.SCHEDULED.value, FollowUp.due_at <= utcnow()
        )
    if onboarding_id is not None:
        query = query.where(FollowUp.onboarding_id == onboarding_id)
    return [follow_up_json(f) for f in session.scalars(query)]


def acknowledge_follow_up(session: Session, follow_up_id: int) -> dict[str, Any]:
    """The business did what a reminder asked: the rest of its series is cancelled. Commits."""
    try:
        follow_up = acknowledge(session, follow_up_id)
    except FollowUpError as exc:
        if session.get(FollowUp, follow_up_id) is None:
            raise NotFoundError(str(exc)) from None
        raise RefusedError(str(exc)) from None
    return follow_up_json(follow_up)


def plan_retry(
    session: Session,
    onboarding_id: int,
    *,
    settings: Settings,
    force: bool = False,
    phone_number_id: str | None = None,
) -> RetryPlan:
    """Put a failed or stuck onboarding back on its step. Commits; the caller enqueues it."""
    if session.get(Onboarding, onboarding_id) is None:
        raise NotFoundError(f"no onboarding {onboarding_id}")
    try:
        return retry(
            session, onboarding_id, settings=settings, force=force, phone_number_id=phone_number_id
        )
    except RetryRefusedError as exc:
        raise RefusedError(str(exc)) from None


def plan_replay(
    session: Session, *, delivery_id: int | None = None, status: str | None = None
) -> list[int]:
    """Stored deliveries to process again (one by id, or every one in a status), put back to
    pending. Commits; the caller enqueues them."""
    if (delivery_id is None) == (status is None):
        raise InvalidRequestError("give either a delivery id or a status")
    _inbox_status(status)
    try:
        ids = replay(session, delivery_id=delivery_id, status=status)
    except BodyDroppedError as exc:
        raise RefusedError(str(exc)) from None
    if delivery_id is not None and not ids:
        raise NotFoundError(f"no delivery {delivery_id}")
    return ids
