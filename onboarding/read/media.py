"""Stored media by content hash: which file to stream, and as what.

Media is stored once per content under ``COEX_MEDIA_DIR/<sha256[:2]>/<sha256>``
(:func:`onboarding.ingest.media.store_bytes`), and a stored message's ``media_sha256`` is that
hex digest. Only a 64-character lowercase hex digest names a file (anything else names none, so
no path can lead out of the media directory), and only a digest some message holds as stored
media is served; its content type is that message's, if it is a well-formed media type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import MediaState, Message
from onboarding.read.messages import SHA256_HEX

log = structlog.get_logger(__name__)

FALLBACK_TYPE = "application/octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,64}"
#: ``type/subtype`` and ``; name=value`` parameters (``audio/ogg; codecs=opus``), nothing that
#: could break a header.
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}={_TOKEN})*")


@dataclass(frozen=True)
class StoredMedia:
    path: Path
    content_type: str


def find_media(session: Session, media_dir: Path, sha256: str) -> StoredMedia | None:
    """The stored file named ``sha256`` and its content type, or None if there is none."""
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
    root = media_dir.resolve()
    path = (root / digest[:2] / digest).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        log.warning("media_file_missing", sha256=digest)
        return None
    return StoredMedia(path, content_type(row.media_mime))


def open_media(media_dir: Path, sha256: str) -> BinaryIO:
    """The stored bytes of the media named ``sha256``, opened for reading.

    The one place that reads stored media by content hash for a caller that copies the bytes
    (the data export): a store other than the local folder plugs in here. ``ValueError`` if
    ``sha256`` is not a lowercase hex digest, ``FileNotFoundError`` if no such file is stored.
    """
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
    return (media_dir / sha256[:2] / sha256).open("rb")


def content_type(mime: str | None) -> str:
    """``mime`` if it is a well-formed media type, else ``application/octet-stream``."""
    if mime is not None and _MEDIA_TYPE.fullmatch(mime.strip()):
        return mime.strip()
    return FALLBACK_TYPE
