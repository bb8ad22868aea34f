"""Queue ``sync``: connect (number, eligibility, ``subscribed_apps``), the one-shot
``smb_app_data`` trigger, and the deadline sweeper (beat)."""

from __future__ import annotations

from onboarding.outcomes import Next
from onboarding.runtime import current
from onboarding.signup import handoff
from onboarding.sync import sweep as sweeper
from onboarding.sync import trigger as sync
from tasks.base import coexist_task, enqueue_after_commit, enqueue_step
from tasks.ingest import wake_waiting


@coexist_task("coexist.sync.connect", soft_time_limit=60, time_limit=75, max_retries=30)
def connect(onboarding_id: int) -> None:
    """Resolve the number, check eligibility, subscribe the app; then request the syncs."""
    rt = current()
    with rt.db.session() as session:
        nxt = handoff.connect(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_id=onboarding_id
        )
    if nxt is Next.SYNC:
        enqueue_after_commit(None, request_syncs, onboarding_id)
        enqueue_after_commit(None, wake_waiting, onboarding_id)


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
        due = sweeper.sweep(session, settings=rt.settings)
    for step, ids in due.items():
        for onboarding_id in ids:
            enqueue_step(None, Next(step), onboarding_id)
