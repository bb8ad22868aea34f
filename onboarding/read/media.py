"""Stored media by content hash: which object to stream, and as what.

Media is stored once per content in the media store (:mod:`onboarding.media_store`, a directory
or an S3 bucket, ``<sha256[:2]>/<sha256>``), and a stored message's ``media_sha256`` is that hex
digest. Only a 64-character lowercase hex digest names an object (anything else names none, so
no name can lead out of the store), and only a digest some message holds as stored media is
served; its content type is that message's, if it is a well-formed media type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import MediaState, Message
from onboarding.media_store import MediaStore, StoredObject
from onboarding.read.messages import SHA256_HEX

log = structlog.get_logger(__name__)

FALLBACK_TYPE = "application/octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,64}"
#: ``type/subtype`` and ``; name=value`` parameters (``audio/ogg; codecs=opus``), nothing that
#: could break a header.
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}={_TOKEN})*")


@dataclass(frozen=True)
class StoredMedia:
    """An object opened for reading (stream its chunks, which close it) and its content type."""

    object: StoredObject
    content_type: str


def find_media(session: Session, store: MediaStore, sha256: str) -> StoredMedia | None:
    """The stored object named ``sha256``, opened, and its content type; None if there is none.

    Raises :class:`onboarding.media_store.StoreUnavailable` when the store cannot be reached.
    """
    digest = sha256.lower()
    if not SHA256_HEX.fullmatch(digest):
        return None
    row = session.execute(
        select(Message.media_mime)
        .where(Message.media_sha256 == digest, Message.media_state == MediaState.STORED.value)
        .limit(1)
    ).first()
    if row is None:
        return None
    opened = store.open(digest)
    if opened is None:
        log.warning("media_file_missing", sha256=digest, store=store.location)
        return None
    return StoredMedia(opened, content_type(row.media_mime))


def content_type(mime: str | None) -> str:
    """``mime`` if it is a well-formed media type, else ``application/octet-stream``."""
    if mime is not None and _MEDIA_TYPE.fullmatch(mime.strip()):
        return mime.strip()
    return FALLBACK_TYPE
