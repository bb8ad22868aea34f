"""Generated media: the items a history late-media webhook announces, and their bytes.

A :class:`MediaItem` names one medium (ids, type, digest, size); its bytes are never stored but
regenerated from its ``content_key`` (:func:`media_bytes`), starting with the format's magic.
Its ``sha256`` is written in hex or base64 (:func:`media_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from onboarding.sandbox.profile import Sha256Encoding

MEDIA_KINDS: Final = ("image", "document", "audio", "video")
MEDIA_FORMATS: Final[Mapping[str, tuple[str, bytes]]] = {
    "image": ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    "document": ("application/pdf", b"%PDF-1.7\n"),
    "audio": ("audio/ogg; codecs=opus", b"OggS\x00\x02"),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
}
"""MIME type and leading magic bytes of each media kind."""


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One downloadable medium announced by a history late-media webhook."""

    media_id: str
    wamid: str
    kind: str
    mime_type: str
    sha256: str
    file_size: int
    content_key: str

    def content(self) -> bytes:
        """The medium's bytes, regenerated from its key (``file_size`` bytes)."""
        return media_bytes(self.content_key, self.file_size, self.mime_type)


def media_bytes(content_key: str, size: int, mime_type: str) -> bytes:
    """Deterministic pseudo-random bytes of a medium, starting with its format's magic."""
    magic = next(
        (head for mime, head in MEDIA_FORMATS.values() if mime == mime_type),
        b"",
    )[:size]
    body = random.Random(content_key).randbytes(size - len(magic))
    return magic + body


def media_digest(content: bytes, encoding: Sha256Encoding = "hex") -> str:
    """The ``sha256`` field of a medium: lowercase hex (default) or base64 of the digest."""
    digest = hashlib.sha256(content)
    if encoding == "base64":
        return base64.b64encode(digest.digest()).decode()
    return digest.hexdigest()
