"""Queue ``signup``: the code exchange (the code dies 30 s after signup) and beat's resume of
exchanges whose message went missing. Connect runs on queue ``sync`` (:mod:`tasks.sync`), so a
burst of connects never delays an exchange."""

from __future__ import annotations

from onboarding.outcomes import Next
from onboarding.runtime import current
from onboarding.signup import handoff
from tasks.base import coexist_task, enqueue_after_commit, enqueue_step


@coexist_task(
    "coexist.signup.exchange_code",
    soft_time_limit=25,
    time_limit=30,
    max_retries=20,
    # The code works once: an exchange terminated on a lost broker connection after Meta took
    # the code would lose the token for good. Acknowledged on receipt, it runs to its commit;
    # a message lost with the broker is sent again by beat's resume within seconds.
    acks_late=False,
)
def exchange_code(onboarding_id: int) -> None:
    """Exchange the signup code for the business token, then connect."""
    rt = current()
    with rt.db.session() as session:
        nxt = handoff.exchange_code(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_id=onboarding_id
        )
    if nxt is Next.CONNECT:
        enqueue_step(None, Next.CONNECT, onboarding_id)


@coexist_task("coexist.signup.resume", soft_time_limit=4, time_limit=5, max_retries=0)
def resume_exchanges() -> None:
    """Every few seconds: enqueue again the exchanges of signups whose message went missing."""
    rt = current()
    with rt.db.session() as session:
        ids = handoff.unexchanged(session, settings=rt.settings)
    for onboarding_id in ids:
        enqueue_after_commit(None, exchange_code, onboarding_id)
