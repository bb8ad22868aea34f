"""Operator actions that start work, for the entry points (CLI, admin API, console): the
domain plans them (:mod:`onboarding.operations`), these enqueue what was planned."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from config import Settings
from models import ErasureState
from onboarding import operations
from onboarding.sync.retry import RetryPlan
from tasks.base import enqueue_after_commit, enqueue_step
from tasks.erase import run as run_erasure
from tasks.ingest import process_delivery


def retry_onboarding(
    session: Session,
    onboarding_id: int,
    *,
    settings: Settings,
    force: bool = False,
    phone_number_id: str | None = None,
) -> RetryPlan:
    """Resume a failed or stuck onboarding at the step it stopped (committed, then enqueued)."""
    plan = operations.plan_retry(
        session, onboarding_id, settings=settings, force=force, phone_number_id=phone_number_id
    )
    enqueue_step(None, plan.step, onboarding_id)
    return plan


def replay_deliveries(
    session: Session, *, delivery_id: int | None = None, status: str | None = None
) -> list[int]:
    """Process stored deliveries again (idempotent): put back to pending, then enqueued."""
    ids = operations.plan_replay(session, delivery_id=delivery_id, status=status)
    for one in ids:
        enqueue_after_commit(None, process_delivery, one)
    return ids


def erase_onboarding(
    session: Session, onboarding_id: int, *, reason: str | None = None
) -> dict[str, Any]:
    """Erase one onboarding's data: the request recorded (committed), then its run enqueued
    (nothing more is enqueued for an erasure already done)."""
    record = operations.request_erasure(session, onboarding_id, reason=reason)
    if record["state"] != ErasureState.DONE.value:
        enqueue_after_commit(None, run_erasure, onboarding_id)
    return record
