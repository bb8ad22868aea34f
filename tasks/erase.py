"""Queue ``followups``: erase onboardings' data in bounded runs, and beat's sweep that starts
the erasures the automatic rules make due and resumes the running ones."""

from __future__ import annotations

from models import ErasureState
from onboarding.media_store import store_for
from onboarding.rights import erase
from onboarding.runtime import current
from tasks.base import coexist_task, enqueue_after_commit


@coexist_task("coexist.erase.run", soft_time_limit=540, time_limit=600, max_retries=5)
def run(onboarding_id: int) -> None:
    """Run a bounded part of one erasure; enqueue the next part until it is done."""
    rt = current()
    with rt.db.session() as session:
        erasure = erase.advance(
            session, onboarding_id, store=store_for(rt.settings), settings=rt.settings
        )
        more = erasure is not None and erasure.state == ErasureState.RUNNING.value
        held = erasure is not None and erasure.lease_until is not None
    if more and not held:
        enqueue_after_commit(None, run, onboarding_id)


@coexist_task("coexist.erase.sweep", soft_time_limit=50, time_limit=58, max_retries=0)
def sweep() -> None:
    """Beat, every minute: start the erasures due by the automatic rules, resume running ones
    (at most ``COEX_ERASE_SWEEP_LIMIT`` of each)."""
    rt = current()
    with rt.db.session() as session:
        due = erase.sweep(session, settings=rt.settings)
    for onboarding_id in due:
        enqueue_after_commit(None, run, onboarding_id)
