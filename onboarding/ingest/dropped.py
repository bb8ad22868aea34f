"""Messages coexist does not keep: their record, and the rows to remove.

Two kinds are not kept: a group chat's messages (:data:`GROUP`) and messages older than the
history window (:data:`OUT_OF_WINDOW`, docs/meta.md#43-history-threads-and-messages). Either
kind arrives in a chunk; the media update of one of its messages may arrive before or after
it, on another worker. The record of dropped ids is what lets either order end with no stored
message: the chunk records before it removes, the media update looks before and after it
stores (:mod:`onboarding.ingest.late_media`), and applies the windows to its own timestamp
(:mod:`onboarding.ingest.windows`).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models import DroppedMessage, Message, MessageSource
from onboarding.store import insert_for

#: Ids per ``IN (...)`` clause.
BATCH = 500
#: Reasons a message is not kept.
GROUP = "group"
OUT_OF_WINDOW = "out_of_window"


def drop_messages(session: Session, onboarding_id: int, wamids: list[str], reason: str) -> None:
    """Remember messages that are not kept, and remove any that a media update stored first.

    The record is committed before the removal (which is left to the caller's commit): a
    media update stored by another worker at the same time is either committed before the
    removal looks, or finds the record when it looks again after its own commit.
    """
    batches = [sorted(set(wamids[start : start + BATCH])) for start in range(0, len(wamids), BATCH)]
    for batch in batches:
        stmt = insert_for(session, DroppedMessage.__table__).on_conflict_do_nothing(
            index_elements=["onboarding_id", "wamid"]
        )
        session.execute(
            stmt, [{"onboarding_id": onboarding_id, "wamid": w, "reason": reason} for w in batch]
        )
    session.commit()
    remove_history_messages(session, onboarding_id, [w for batch in batches for w in batch])


def remove_history_messages(session: Session, onboarding_id: int, wamids: list[str]) -> None:
    """Delete these history messages (not committed); messages from other sources stay."""
    for start in range(0, len(wamids), BATCH):
        session.execute(
            delete(Message).where(
                Message.onboarding_id == onboarding_id,
                Message.wamid.in_(wamids[start : start + BATCH]),
                Message.source == MessageSource.HISTORY.value,
            )
        )


def dropped_wamids(session: Session, onboarding_id: int, wamids: list[str]) -> set[str]:
    """Which of ``wamids`` belong to messages coexist does not keep."""
    found: set[str] = set()
    for start in range(0, len(wamids), BATCH):
        found.update(
            session.scalars(
                select(DroppedMessage.wamid).where(
                    DroppedMessage.onboarding_id == onboarding_id,
                    DroppedMessage.wamid.in_(wamids[start : start + BATCH]),
                )
            )
        )
    return found
