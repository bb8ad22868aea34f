"""Media from history: download what Meta still offers, say why the rest is not there.

Placeholders for media older than the cut-off (14 days before signup) are ``skipped_too_old``
and never fetched. Newer media waits (``awaiting_media``) for the later webhook that carries its
media id (:mod:`.late_media`); then ``GET /{media-id}`` gives a short-lived URL, fetched with the
business token, checked against Meta's sha256, and put in the media store
(:mod:`onboarding.media_store`: a directory or an S3 bucket) by content hash, one copy per
distinct content. A store that cannot be reached gives the attempt back and the download is tried
again later (the media stays ``awaiting_media``; beat's watchdog takes it up again if the task's
own retries run out); a store that refuses (no such bucket, access denied) counts as a failed
attempt, its reason kept. Media ids die 7 days after they are sent: not downloaded
by then, the media is ``expired``. Failures are retried a bounded number of times, then
``failed`` with the reason. Each of these ends writes its feed event (``media.stored``,
``media.expired``, ``media.failed``) in the transaction that settles it; ``media.skipped`` is
written with the message's ``messages.stored`` (:mod:`onboarding.feed.bodies`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from config import Settings
from config.logging import bind, register_secret
from models import MediaState, Message, Onboarding, utcnow
from models.crypto import TokenCipher
from onboarding import metrics
from onboarding.feed.events import EventType, emit_for
from onboarding.media_store import MediaStore, MediaStoreError, StoreUnavailable, store_for
from onboarding.meta.errors import GraphError, TransientGraphError
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater

log = structlog.get_logger(__name__)


def sha256_matches(expected: str | None, content: bytes) -> bool:
    """Meta's sha256 as hex or base64; absent means nothing to check against."""
    if not expected:
        return True
    digest = hashlib.sha256(content).digest()
    text = expected.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower() == digest.hex()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False) == digest
    except (binascii.Error, ValueError):
        return False


def download(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    message_id: int,
    now: datetime | None = None,
    store: MediaStore | None = None,
) -> str:
    """Download one message's media into ``store`` (default: the settings' store). Returns the
    media state it ended in.

    Raises :class:`RetryLater` for a transient failure with attempts left, and for a media
    store that cannot be reached. A message removed meanwhile (a group chat's chunk dropping a
    media update stored first) ends as ``missing``.
    """
    try:
        return _download(
            session,
            graph,
            settings=settings,
            cipher=cipher,
            message_id=message_id,
            now=now,
            store=store or store_for(settings),
        )
    except (StaleDataError, ObjectDeletedError):
        session.rollback()
        log.info("media_message_removed", message_id=message_id)
        return "missing"


def _download(  # noqa: C901 - one branch per way a download ends (stored, expired, failed, retried)
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    message_id: int,
    now: datetime | None,
    store: MediaStore,
) -> str:
    now = now or utcnow()
    message = session.get(Message, message_id)
    if message is None:
        return "missing"
    bind(onboarding_id=message.onboarding_id, message_id=message.id)
    if message.media_state != MediaState.AWAITING or message.media_id is None:
        return message.media_state
    onboarding = session.get_one(Onboarding, message.onboarding_id)
    if onboarding.erased_at is not None:
        return "erased"  # its erasure deletes the message (onboarding/rights/erase.py)
    if onboarding.token_ciphertext is None:
        # Announced before the code exchange finished: nothing to download with yet.
        raise RetryLater("media download: no business token yet", 2.0)
    born = message.media_id_at or now
    if now - born > timedelta(days=settings.media_id_ttl_days):
        return _settle(
            session,
            message,
            MediaState.EXPIRED,
            "media id older than 7 days: Meta no longer serves it",
        )
    if message.media_attempts >= settings.media_max_attempts:
        # Whatever ended the earlier attempts (even a failure nothing classified), the
        # budget holds: no attempt past it.
        return _settle(
            session,
            message,
            MediaState.FAILED,
            f"gave up after {message.media_attempts} attempts: "
            f"{message.media_error or 'the last attempt ended without an answer'}",
        )
    claimed = session.execute(
        update(Message)
        .where(Message.id == message.id, Message.media_attempts == message.media_attempts)
        .values(media_attempts=message.media_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return "busy"
    session.expire(message)  # reloaded on next access; ObjectDeletedError if it is gone
    token = cipher.decrypt(onboarding.token_ciphertext)
    register_secret(token)
    try:
        meta = graph.get_media(message.media_id, token)
        register_secret(meta["url"])
        size = meta.get("file_size")
        if isinstance(size, int) and size > settings.media_max_bytes:
            return _settle(
                session,
                message,
                MediaState.FAILED,
                f"media is {size} bytes, over the {settings.media_max_bytes} limit",
            )
        content = graph.download(
            meta["url"],
            token,
            max_bytes=settings.media_max_bytes,
            allowed_hosts=settings.media_hosts,
        )
    except TransientGraphError as exc:
        if message.media_attempts >= settings.media_max_attempts:
            return _settle(
                session,
                message,
                MediaState.FAILED,
                f"gave up after {message.media_attempts} attempts: {exc}",
            )
        message.media_error = str(exc)
        session.commit()
        wait = min(600.0, 5.0 * 2**message.media_attempts) * random.uniform(0.5, 1.0)
        raise RetryLater(f"media download: {exc.message}", wait) from exc
    except GraphError as exc:
        return _settle(session, message, MediaState.FAILED, str(exc))
    expected = message.media_sha256 or (
        meta.get("sha256") if isinstance(meta.get("sha256"), str) else None
    )
    if not sha256_matches(expected, content):
        if message.media_attempts >= settings.media_max_attempts:
            return _settle(session, message, MediaState.FAILED, "sha256 mismatch on every attempt")
        message.media_error = "sha256 mismatch; will download again"
        session.commit()
        raise RetryLater("media sha256 mismatch", 5.0)
    mime = meta.get("mime_type")
    if isinstance(mime, str) and not message.media_mime:
        message.media_mime = mime[:128]
    try:
        digest = store.put(content, content_type=message.media_mime)
    except StoreUnavailable as exc:
        return _store_unavailable(session, message, exc, settings.media_store_retry_seconds)
    except MediaStoreError as exc:
        # A store that refuses (no such bucket, access denied) needs its settings fixed: the
        # attempt counts, the reason is kept, and the task fails loudly.
        message.media_error = f"media store refused: {exc.message}"
        session.commit()
        log.error("media_store_refused", store=exc.location, error=exc.message)
        raise
    message.media_path = store.url(digest)
    # Meta's sha256 (hex or base64) matched; keep it as the hex the object is named by, the key
    # the read API serves the media under.
    message.media_sha256 = digest
    message.media_size = len(content)
    return _settle(session, message, MediaState.STORED, None)


def _store_unavailable(
    session: Session, message: Message, exc: StoreUnavailable, wait: float
) -> str:
    """The media was fetched but could not be kept: give the attempt back (the failure is not
    the media's) and try again later; nothing was stored."""
    session.rollback()  # the mime noted above goes with it: set again on the next attempt
    session.execute(
        update(Message)
        .where(Message.id == message.id, Message.media_state == MediaState.AWAITING.value)
        .values(
            media_attempts=case((Message.media_attempts > 0, Message.media_attempts - 1), else_=0),
            media_error=f"media store unavailable: {exc.message}",
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    metrics.MEDIA_STORE_UNAVAILABLE.inc()
    log.warning("media_store_unavailable", store=exc.location, error=exc.message)
    raise RetryLater(f"media store unavailable: {exc.message}", wait) from exc


#: The feed event of each state a download ends in.
SETTLED: dict[MediaState, EventType] = {
    MediaState.STORED: EventType.MEDIA_STORED,
    MediaState.EXPIRED: EventType.MEDIA_EXPIRED,
    MediaState.FAILED: EventType.MEDIA_FAILED,
}


def _settle(session: Session, message: Message, state: MediaState, error: str | None) -> str:
    """The media's final state, with its feed event, committed."""
    message.media_state = state.value
    message.media_error = error
    body: dict[str, Any] = {"wamid": message.wamid}
    if state is MediaState.STORED:
        body |= {
            "sha256": message.media_sha256,
            "mime": message.media_mime,
            "size": message.media_size,
        }
    else:
        body["error"] = error
    emit_for(session, SETTLED[state], message.onboarding_id, body)
    session.commit()
    metrics.MEDIA.labels(state.value).inc()
    log.info("media_settled", media_state=state.value, error=error)
    return state.value


def expire_overdue(session: Session, *, settings: Settings, now: datetime | None = None) -> int:
    """Awaiting media past the 7-day life of media ids becomes ``expired``. Commits."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.media_id_ttl_days)
    ids = list(
        session.scalars(
            select(Message.id)
            .join(Onboarding, Onboarding.id == Message.onboarding_id)
            .where(
                Message.media_state == MediaState.AWAITING.value,
                # With an id: 7 days after it came. Without one: no media update came in 7 days.
                ((Message.media_id_at.is_not(None)) & (Message.media_id_at < cutoff))
                | ((Message.media_id_at.is_(None)) & (Onboarding.signup_completed_at < cutoff)),
            )
            .limit(10_000)
        )
    )
    if ids:
        reason = "no download within the 7-day life of Meta's media ids"
        expired = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.media_state == MediaState.AWAITING.value)
            .values(media_state=MediaState.EXPIRED.value, media_error=reason)
            .returning(Message.onboarding_id, Message.wamid)
        ).all()
        for onboarding_id, wamid in expired:
            emit_for(
                session, EventType.MEDIA_EXPIRED, onboarding_id, {"wamid": wamid, "error": reason}
            )
    session.commit()
    return len(ids)


def due_downloads(session: Session, *, limit: int = 1000) -> list[int]:
    """Awaiting media with an id whose download was never completed (for the beat job)."""
    return list(
        session.scalars(
            select(Message.id)
            .where(Message.media_state == MediaState.AWAITING.value, Message.media_id.is_not(None))
            .order_by(Message.id)
            .limit(limit)
        )
    )
