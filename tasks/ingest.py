"""Queue ``ingest``: process inbox rows, download media, and the beat jobs that keep it honest."""

from __future__ import annotations

import structlog

from onboarding import pauses
from onboarding.ingest import batches, media, retention, stalled, statuses
from onboarding.ingest import dispatch as ingest
from onboarding.runtime import current
from tasks.base import coexist_task, enqueue_after_commit

log = structlog.get_logger(__name__)


def _process(delivery_id: int) -> None:
    rt = current()
    with rt.ingest_db.session() as session:
        outcome = ingest.process_delivery(session, delivery_id, settings=rt.settings)
    for message_id in outcome.media_message_ids:
        enqueue_after_commit(None, download_media, message_id)


@coexist_task(
    "coexist.ingest.process_delivery", soft_time_limit=540, time_limit=600, max_retries=10
)
def process_delivery(delivery_id: int) -> None:
    """Route one stored webhook delivery to its handlers; then fetch any new media."""
    _process(delivery_id)


@coexist_task(
    "coexist.ingest.process_deliveries", soft_time_limit=1500, time_limit=1800, max_retries=10
)
def process_deliveries(delivery_ids: list[int]) -> None:
    """Process the stored deliveries the receiver batched: live traffic together, the rest in
    turn; one that fails is retried alone."""
    rt = current()
    with rt.ingest_db.session() as session:
        done = batches.process_batch(session, delivery_ids, settings=rt.settings)
    for outcome in done.outcomes:
        for message_id in outcome.media_message_ids:
            enqueue_after_commit(None, download_media, message_id)
    for delivery_id in done.failed:
        enqueue_after_commit(None, process_delivery, delivery_id)


@coexist_task("coexist.ingest.download_media", soft_time_limit=240, time_limit=300, max_retries=8)
def download_media(message_id: int) -> None:
    """Download one message's media within its 7-day life."""
    rt = current()
    with rt.db.session() as session:
        media.download(
            session, rt.graph, settings=rt.settings, cipher=rt.cipher, message_id=message_id
        )


@coexist_task("coexist.ingest.wake_waiting", soft_time_limit=50, time_limit=60, max_retries=5)
def wake_waiting(onboarding_id: int) -> None:
    """Dispatch deliveries that arrived before this onboarding was known."""
    from models import Onboarding  # noqa: PLC0415

    rt = current()
    with rt.db.session() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        ids = ingest.waiting_for(session, onboarding) if onboarding is not None else []
    for delivery_id in ids:
        enqueue_after_commit(None, process_delivery, delivery_id)


@coexist_task("coexist.ingest.redispatch", soft_time_limit=50, time_limit=58, max_retries=0)
def redispatch() -> None:
    """Beat: dispatch inbox rows left pending (broker outage) or whose onboarding appeared."""
    rt = current()
    with rt.db.session() as session:
        ids = ingest.stale_pending(session, settings=rt.settings)
    for delivery_id in ids:
        enqueue_after_commit(None, process_delivery, delivery_id)


@coexist_task("coexist.ingest.watchdog", soft_time_limit=50, time_limit=58, max_retries=0)
def watchdog() -> None:
    """Beat: stalled history syncs, expired media ids, media downloads never started, and
    statuses kept too long for a message that never came."""
    rt = current()
    with rt.db.session() as session:
        stalled.watch_stalled(session, settings=rt.settings)
        media.expire_overdue(session, settings=rt.settings)
        statuses.forget_stale(session)
        due = media.due_downloads(session)
    for message_id in due:
        enqueue_after_commit(None, download_media, message_id)


@coexist_task("coexist.ingest.drop_bodies", soft_time_limit=50, time_limit=58, max_retries=0)
def drop_bodies() -> None:
    """Beat: drop the raw bodies of processed deliveries past ``COEX_INBOX_BODY_RETENTION_DAYS``
    (one batch per tick)."""
    rt = current()
    with rt.db.session() as session:
        retention.drop_bodies(session, settings=rt.settings)


@coexist_task("coexist.ingest.lift_restrictions", soft_time_limit=50, time_limit=58, max_retries=0)
def lift_restrictions() -> None:
    """Beat: note on the timeline the account restrictions that expired (sends honour the
    expiry by themselves)."""
    rt = current()
    with rt.db.session() as session:
        pauses.lift_expired(session)
