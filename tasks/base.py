"""The reliability contract every coexist task shares, and the after-commit enqueue helper.

Every task is declared with :func:`coexist_task`, which fixes: ``acks_late`` and
``reject_on_worker_lost`` (a crashed worker's message is redelivered), ``ignore_result``,
explicit soft and hard time limits, autoretry with backoff and jitter for our transient error
types, a finite ``max_retries``, and countdowns capped below the broker's visibility timeout.
A domain step asks for a delayed re-run by raising :class:`onboarding.outcomes.RetryLater`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from celery import Task
from celery.exceptions import MaxRetriesExceededError, Retry
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from config.celery import MAX_COUNTDOWN
from onboarding.meta.errors import TransientGraphError
from onboarding.outcomes import Next, RetryLater
from tasks.app import app

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
TRANSIENT = (TransientGraphError, OperationalError, ConnectionError, TimeoutError)


def coexist_task(
    name: str,
    *,
    soft_time_limit: int,
    time_limit: int,
    max_retries: int,
    retry_backoff_max: int = 600,
    acks_late: bool = True,
) -> Callable[[F], Task]:
    """Declare a task with coexist's reliability contract.

    ``acks_late=False`` is for a step that must never be cut off halfway: Celery terminates a
    late-acknowledged task that is running when the broker connection drops (its message will
    be handed out again), and only a task acknowledged on receipt is left to finish.
    """
    if retry_backoff_max > MAX_COUNTDOWN:
        raise ValueError("retry_backoff_max must stay below the broker visibility timeout")

    def decorate(fn: F) -> Task:
        @functools.wraps(fn)
        def run(self: Task, *args: Any, **kwargs: Any) -> Any:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(task=name, task_id=self.request.id)
            try:
                return fn(*args, **kwargs)
            except RetryLater as exc:
                countdown = min(exc.countdown, MAX_COUNTDOWN) * random.uniform(1.0, 1.2)
                if self.request.is_eager:
                    # In-process (demo, tests): Celery would re-run at once, ignoring the
                    # countdown. Leave the step to the sweeper, which honours the backoff.
                    log.info(
                        "task_retry_left_to_sweeper",
                        reason=exc.reason,
                        countdown=round(countdown, 2),
                    )
                    return None
                log.info(
                    "task_retry_scheduled",
                    reason=exc.reason,
                    countdown=round(countdown, 2),
                    retries=self.request.retries,
                )
                try:
                    raise self.retry(countdown=countdown, exc=exc) from exc
                except MaxRetriesExceededError:
                    log.warning("task_gave_up", reason=exc.reason, retries=self.request.retries)
                    return None
                except RetryLater:
                    log.warning("task_gave_up", reason=exc.reason, retries=self.request.retries)
                    return None

        task: Task = app.task(
            bind=True,
            name=name,
            acks_late=acks_late,
            reject_on_worker_lost=acks_late,
            ignore_result=True,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            autoretry_for=TRANSIENT,
            retry_backoff=True,
            retry_backoff_max=retry_backoff_max,
            retry_jitter=True,
            max_retries=max_retries,
        )(run)
        return task

    return decorate


#: The task that runs each step a domain function can ask for (:class:`Next`), by name, so a
#: module that enqueues a step needs no import of the module that defines its task.
STEP_TASKS: dict[Next, str] = {
    Next.EXCHANGE: "coexist.signup.exchange_code",
    Next.CONNECT: "coexist.sync.connect",
    Next.SYNC: "coexist.sync.request_syncs",
}


def enqueue_step(session: Session | None, step: Next, onboarding_id: int) -> None:
    """Enqueue ``step`` for an onboarding once ``session`` has committed (see below)."""
    enqueue_after_commit(session, app.tasks[STEP_TASKS[step]], onboarding_id)


_PENDING = "coexist_after_commit"


def enqueue_after_commit(session: Session | None, task: Task, *args: Any) -> None:
    """Send ``task`` once ``session``'s transaction has committed (now, if none is open).

    A worker must never look for a row that is not there yet. If sending fails (broker down)
    the rows are committed anyway and the beat sweeper enqueues the step later.
    """
    if session is None or not session.in_transaction():
        _send(task, args)
        return
    session.info.setdefault(_PENDING, []).append((task, args))


def _send(task: Task, args: tuple[Any, ...]) -> None:
    try:
        task.apply_async(args=args)
    except Retry:
        pass  # an eager task asked to run again later; its retry is already scheduled
    except Exception as exc:  # broker unreachable: the sweeper will catch up
        log.error("enqueue_failed", task=task.name, args=args, error=repr(exc))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for task, args in session.info.pop(_PENDING, []):
        _send(task, args)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
