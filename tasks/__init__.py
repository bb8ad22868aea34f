"""The Celery app and thin task wrappers, one module per queue (``celery -A tasks worker``).

Importing ``tasks`` registers every task, so :func:`tasks.base.enqueue_step` finds each step's
task by name. The queue modules depend on :mod:`tasks.base` and on each other in one
direction only (``signup`` and ``sync`` enqueue ``ingest``'s ``wake_waiting``).
"""

from tasks import feed, followups, ingest, reconcile, relay, sending, signup, sync
from tasks.app import app

__all__ = [
    "app",
    "feed",
    "followups",
    "ingest",
    "reconcile",
    "relay",
    "sending",
    "signup",
    "sync",
]
