"""Celery configuration: queues, routes, reliability defaults and the beat schedule (fired by
one beat process at a time: tasks/beat.py).

Queues, most urgent first: ``signup`` (the 30 s code exchange), ``sync`` (the 24 h one-shot
trigger), ``ingest`` (webhook processing), ``followups`` (reminders, daily reconciliation,
data erasure).
The ``urgent`` process consumes only the first two, so ingestion can never delay a signup.
``send`` carries outbound Cloud API messages, throttled per number. ``feed`` carries the
feed's push runs (at most one at a time, started by beat every ``COEX_FEED_PUSH_INTERVAL_SECONDS``)
and ``relay`` forwards Meta's deliveries to the provider's receiver: the ``worker`` process lists
both before ``ingest``, so neither push nor the provider's own messages wait behind a history
backlog. With Redis, workers poll their queues in the order given
(``queue_order_strategy="priority"``).
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue  # type: ignore[attr-defined]

from config.broker import broker_transport
from config.settings import Settings

QUEUES = ("signup", "sync", "feed", "relay", "ingest", "followups", "send")
URGENT_QUEUES = ("signup", "sync")
#: No countdown coexist asks for may exceed this; the broker's visibility timeout is above it.
MAX_COUNTDOWN = 900

SWEEP_INTERVAL = 60.0
#: How often beat re-enqueues exchanges of received signups (the code lives 30 s).
RESUME_INTERVAL = 5.0
#: How often beat runs the relay (each run forwards all that is due, then returns).
RELAY_INTERVAL = 1.0
#: How often beat looks for onboardings due for reconciliation (each is due once a day).
RECONCILE_INTERVAL = 3600.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for ``settings`` (also used by tests with eager tasks)."""
    if settings.broker_visibility_timeout <= MAX_COUNTDOWN:
        raise ValueError("broker_visibility_timeout must exceed every task countdown")
    return {
        "broker_url": settings.broker_url,
        # kombu's Redis transport, guarded so that a worker survives Redis dying while it
        # closes a channel or acknowledges a message (see config/broker.py).
        "broker_transport": broker_transport(settings.broker_url),
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout,
            "queue_order_strategy": "priority",
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # On a lost broker connection, stop the tasks whose messages the broker will hand out
        # again (acks_late) instead of finishing them alongside the redelivered copy.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]
            for name in QUEUES
        ],
        "task_default_queue": "ingest",
        "task_routes": {
            "coexist.signup.*": {"queue": "signup"},
            "coexist.sync.*": {"queue": "sync"},
            "coexist.ingest.*": {"queue": "ingest"},
            "coexist.followups.*": {"queue": "followups"},
            "coexist.send.*": {"queue": "send"},
            "coexist.reconcile.*": {"queue": "followups"},
            "coexist.erase.*": {"queue": "followups"},
            "coexist.relay.*": {"queue": "relay"},
            "coexist.feed.*": {"queue": "feed"},
        },
        "beat_schedule": {
            "resume-signups": {
                "task": "coexist.signup.resume",
                "schedule": RESUME_INTERVAL,
                "options": {"expires": RESUME_INTERVAL},
            },
            "sweep-sync-deadlines": {
                "task": "coexist.sync.sweep",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "redispatch-inbox": {
                "task": "coexist.ingest.redispatch",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "schedule-follow-ups": {
                "task": "coexist.followups.schedule",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "reconcile-onboardings": {
                "task": "coexist.reconcile.sweep",
                "schedule": RECONCILE_INTERVAL,
                "options": {"expires": RECONCILE_INTERVAL},
            },
            "erase-onboardings": {
                "task": "coexist.erase.sweep",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "drop-inbox-bodies": {
                "task": "coexist.ingest.drop_bodies",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "lift-expired-restrictions": {
                "task": "coexist.ingest.lift_restrictions",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "relay-deliveries": {
                "task": "coexist.relay.forward",
                "schedule": RELAY_INTERVAL,
                "options": {"expires": RELAY_INTERVAL},
            },
            "release-webhook-overrides": {
                "task": "coexist.reconcile.release_overrides",
                "schedule": SWEEP_INTERVAL,
                "options": {"expires": SWEEP_INTERVAL},
            },
            "push-feed": {
                "task": "coexist.feed.push",
                "schedule": settings.feed_push_interval_seconds,
                "options": {"expires": settings.feed_push_interval_seconds},
            },
            "ingest-watchdog": {
                "task": "coexist.ingest.watchdog",
                "schedule": 5 * SWEEP_INTERVAL,
                "options": {"expires": 5 * SWEEP_INTERVAL},
            },
        },
        "timezone": "UTC",
        "enable_utc": True,
        "task_always_eager": settings.tasks_eager,
        "task_eager_propagates": True,
        **_beat_lock(settings),
    }


def _beat_lock(settings: Settings) -> dict[str, Any]:
    """With Redis, beat fires only while it holds a lock there (tasks/beat.py): of two beat
    processes (a rolling deploy, a second host) one fires the schedule, the other waits."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return {}
    return {
        "beat_scheduler": "tasks.beat:LockedScheduler",
        "coexist_beat_lock_url": settings.broker_url,
        "coexist_beat_lock_timeout": settings.beat_lock_timeout,
    }
