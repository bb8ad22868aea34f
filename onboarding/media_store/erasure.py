"""Erasing the media of messages that are going away, and only what no other message needs.

Stored media is shared by content: two onboardings' messages with the same bytes point at one
object. :func:`erase_media` is called with the messages about to be erased, while their rows are
still there; it deletes the objects of those messages that no message outside the set holds as
stored media, and leaves the rows to the caller. Deleting an object that is already gone is not
an error, so an erasure interrupted halfway can simply be run again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import MediaState, Message
from onboarding.media_store.base import SHA256_HEX, MediaStore

log = structlog.get_logger(__name__)

T = TypeVar("T")
#: Ids or digests per ``IN (...)`` list.
BATCH = 1000
#: Only stored media has an object (the partial index ``ix_messages_media_stored`` finds it).
STORED = Message.media_state == MediaState.STORED.value


@dataclass
class Erased:
    """What :func:`erase_media` did: digests deleted, and digests kept for other messages."""

    deleted: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)


def erase_media(session: Session, store: MediaStore, message_ids: Iterable[int]) -> Erased:
    """Delete the stored media of ``message_ids`` that no other message holds. Writes nothing
    to the database."""
    ids = sorted(set(message_ids))
    within: Counter[str] = Counter()
    for batch in _batches(ids):
        within.update(
            digest
            for digest in session.scalars(
                select(Message.media_sha256).where(Message.id.in_(batch), STORED)
            )
            if digest is not None and SHA256_HEX.fullmatch(digest)
        )
    everywhere: Counter[str] = Counter()
    for digests in _batches(sorted(within)):
        for digest, count in session.execute(
            select(Message.media_sha256, func.count())
            .where(Message.media_sha256.in_(digests), STORED)
            .group_by(Message.media_sha256)
        ):
            everywhere[digest or ""] += count
    erased = Erased()
    for digest in sorted(within):
        if everywhere[digest] > within[digest]:
            erased.shared.append(digest)
            continue
        store.delete(digest)
        erased.deleted.append(digest)
    log.info(
        "media_erased",
        messages=len(ids),
        deleted=len(erased.deleted),
        shared=len(erased.shared),
    )
    return erased


def _batches(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
