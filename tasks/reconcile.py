"""Queue ``followups``: reconcile active onboardings with Meta (beat hands out the batches), and
take back the webhook overrides of onboardings that ended."""

from __future__ import annotations

from onboarding import reconcile
from onboarding.runtime import current
from onboarding.signup import routing
from tasks.base import coexist_task, enqueue_after_commit


@coexist_task("coexist.reconcile.sweep", soft_time_limit=50, time_limit=58, max_retries=0)
def sweep() -> None:
    """Beat, hourly: hand out the onboardings due for reconciliation, in bounded batches."""
    rt = current()
    with rt.db.session() as session:
        due = reconcile.due(session, settings=rt.settings)
    for ids in reconcile.batches(due, rt.settings.reconcile_batch_size):
        enqueue_after_commit(None, batch, ids)


@coexist_task("coexist.reconcile.batch", soft_time_limit=600, time_limit=660, max_retries=0)
def batch(onboarding_ids: list[int]) -> None:
    """Reconcile one batch; the next hourly sweep picks up whatever this one did not finish."""
    rt = current()
    with rt.db.session() as session:
        reconcile.reconcile_batch(
            session,
            rt.graph,
            settings=rt.settings,
            cipher=rt.cipher,
            onboarding_ids=[int(i) for i in onboarding_ids],
        )


@coexist_task(
    "coexist.reconcile.release_overrides", soft_time_limit=50, time_limit=58, max_retries=0
)
def release_overrides() -> None:
    """Beat, every minute: take back the webhook overrides coexist set on ended onboardings."""
    rt = current()
    with rt.db.session() as session:
        routing.release_overrides(session, rt.graph, rt.cipher)
