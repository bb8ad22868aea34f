"""Outbound sends through the Cloud API, throttled per number (:mod:`onboarding.outbound.send`).

Meant for its own queue ``send``, so a backlog of sends never delays signups, syncs or
ingestion; until ``config/celery.py`` routes ``coexist.send.*`` there, it runs on the default
queue (``ingest``).

Run eagerly (the embedded demo), a send that must wait (``RetryLater``: account paused, no
token in time, rate limited) is dropped with ``task_retry_left_to_sweeper``: no sweeper
re-sends messages.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import current_task

from onboarding.outbound import send as sending
from onboarding.outbound.guard import guard_for
from onboarding.outcomes import RetryLater
from onboarding.runtime import current
from tasks.base import coexist_task


@coexist_task(
    "coexist.send.send_message",
    soft_time_limit=30,
    time_limit=45,
    max_retries=25,
    retry_backoff_max=600,
)
def send_message(onboarding_id: int, payload: dict[str, Any]) -> None:
    """Send one text or template message for an onboarding, at most its number's rate.

    Waits (retries) while the account is reconnecting or paused, or Meta answers 130429 or
    131056; refuses for good when the business disconnected. ``payload`` is
    :func:`onboarding.outbound.payload.validate_payload`'s shape, with an optional
    ``idempotency_key`` that makes a redelivered task send nothing twice. Redis unreachable
    (bucket or ledger) is retried like any transient error.
    """
    rt = current()
    guard = guard_for(rt)
    attempt = int(current_task.request.retries or 0) if current_task else 0
    try:
        with rt.db.session() as session:
            sending.send(
                session,
                rt.graph,
                guard.throttle,
                ledger=guard.ledger,
                cipher=rt.cipher,
                onboarding_id=onboarding_id,
                payload=payload,
                attempt=attempt,
            )
    except redis.RedisError as exc:
        raise RetryLater(f"send: Redis unavailable ({type(exc).__name__})", 5.0) from exc
