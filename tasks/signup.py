"""The hand-off: the code exchange on queue ``signup`` (the code dies 30 s after signup), and
connect on queue ``sync``, so a burst of connects never delays an exchange."""

from __future__ import annotations

from onboarding.outcomes import Next
from onboarding.runtime import current
from onboarding.signup import handoff
from tasks.base import coexist_task, enqueue_after_commit


@coexist_task("coexist.signup.exchange_code", soft_time_limit=25, time_limit=30, max_retries=20)
def exchange_code(onboarding_id: int) -> None:
    """Exchange the signup code for the business token, then connect."""
    rt = current()
    with rt.db.session() as session:
        nxt = handoff.exchange_code(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_id=onboarding_id
        )
    if nxt is Next.CONNECT:
        enqueue_after_commit(None, connect, onboarding_id)


@coexist_task("coexist.signup.resume", soft_time_limit=4, time_limit=5, max_retries=0)
def resume_exchanges() -> None:
    """Every few seconds: enqueue again the exchanges of signups whose message went missing."""
    rt = current()
    with rt.db.session() as session:
        ids = handoff.unexchanged(session, settings=rt.settings)
    for onboarding_id in ids:
        enqueue_after_commit(None, exchange_code, onboarding_id)


@coexist_task("coexist.sync.connect", soft_time_limit=60, time_limit=75, max_retries=30)
def connect(onboarding_id: int) -> None:
    """Resolve the number, check eligibility, subscribe the app; then request the syncs."""
    from tasks.sync import request_syncs  # noqa: PLC0415 - sibling task module

    rt = current()
    with rt.db.session() as session:
        nxt = handoff.connect(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_id=onboarding_id
        )
    if nxt is Next.SYNC:
        from tasks.ingest import wake_waiting  # noqa: PLC0415 - sibling task module

        enqueue_after_commit(None, request_syncs, onboarding_id)
        enqueue_after_commit(None, wake_waiting, onboarding_id)
