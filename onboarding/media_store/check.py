"""``coexist media check``: is the media store usable, and does it hold what messages say?

Two checks. A round trip: a probe of random bytes is put, read back, compared and deleted (its
digest is new, so no stored media is touched). Then a sample of the newest stored media: each
digest's object must be there with the size its message recorded.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import MediaState, Message
from onboarding.media_store.base import MediaStore, MediaStoreError


def check(session: Session, store: MediaStore, *, sample: int = 100) -> dict[str, Any]:
    """The store's location, whether a round trip worked, and the sampled media not in it."""
    report: dict[str, Any] = {"store": store.location, "round_trip": "ok", "checked": 0}
    try:
        _round_trip(store)
    except MediaStoreError as exc:
        report["round_trip"] = exc.message
        report["problems"] = []
        return report
    rows = session.execute(
        select(Message.media_sha256, func.max(Message.media_size), func.max(Message.id))
        .where(Message.media_state == MediaState.STORED.value, Message.media_sha256.is_not(None))
        .group_by(Message.media_sha256)
        .order_by(func.max(Message.id).desc())
        .limit(sample)
    ).all()
    problems = []
    for digest, size, message_id in rows:
        if digest is None:  # excluded by the query; here for the type
            continue
        try:
            found = store.size(digest)
        except MediaStoreError as exc:
            problems.append({"sha256": digest, "message_id": message_id, "problem": exc.message})
            continue
        if found is None:
            problems.append({"sha256": digest, "message_id": message_id, "problem": "missing"})
        elif size is not None and found != size:
            problems.append(
                {
                    "sha256": digest,
                    "message_id": message_id,
                    "problem": f"{found} bytes, the message says {size}",
                }
            )
    report["checked"] = len(rows)
    report["problems"] = problems
    return report


def _round_trip(store: MediaStore) -> None:
    probe = b"coexist media store check " + secrets.token_bytes(16)
    digest = store.put(probe, content_type="application/octet-stream")
    try:
        opened = store.open(digest)
        if opened is None or b"".join(opened.chunks()) != probe:
            raise MediaStoreError("the probe did not read back as written", location=store.location)
    finally:
        store.delete(digest)
