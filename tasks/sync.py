"""Queue ``sync``: the one-shot ``smb_app_data`` trigger and the deadline sweeper (beat)."""

from __future__ import annotations

from onboarding.outcomes import Next
from onboarding.runtime import current
from onboarding.sync import trigger as sync
from tasks.base import coexist_task, enqueue_after_commit
from tasks.signup import connect, exchange_code


@coexist_task("coexist.sync.request_syncs", soft_time_limit=60, time_limit=75, max_retries=40)
def request_syncs(onboarding_id: int) -> None:
    """Request contacts then history sync, once each, inside the 24 h window."""
    rt = current()
    with rt.db.session() as session:
        sync.request_syncs(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_id=onboarding_id
        )


@coexist_task("coexist.sync.sweep", soft_time_limit=50, time_limit=58, max_retries=0)
def sweep() -> None:
    """Every minute: fire syncs still due, alert near the deadline, close missed windows."""
    rt = current()
    with rt.db.session() as session:
        due = sync.sweep(session, settings=rt.settings)
    steps = {Next.EXCHANGE: exchange_code, Next.CONNECT: connect, Next.SYNC: request_syncs}
    for step, ids in due.items():
        for onboarding_id in ids:
            enqueue_after_commit(None, steps[Next(step)], onboarding_id)
