"""What every media store does, and the errors it raises.

Media is content-addressed: an object's name is the lowercase hex sha256 of its bytes, kept
under ``<prefix>/<sha256[:2]>/<sha256>``. Only a 64-character lowercase hex digest is ever a key
(:func:`key_for`), so no name can lead outside the store. ::

    MediaStoreError           the store refused or failed (a setting, a permission, a bug)
    ├── StoreUnavailable      transient: unreachable, timed out, throttled, 5xx; try later
    └── InvalidDigestError    not a 64-character lowercase hex sha256 (also a ValueError)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

#: Bytes per chunk when stored media is read back.
CHUNK_SIZE = 64 * 1024
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class MediaStoreError(Exception):
    """The media store failed; ``location`` says which store (never a credential)."""

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(f"{message} ({location})")
        self.message = message
        self.location = location


class StoreUnavailable(MediaStoreError):  # noqa: N818 - reads as a state, like RetryLater
    """The store could not be reached or answered with a transient error: try again later."""


class InvalidDigestError(MediaStoreError, ValueError):
    """A name that is not a 64-character lowercase hex sha256."""


def key_for(sha256: str, prefix: str = "") -> str:
    """``<prefix>/<sha256[:2]>/<sha256>``; InvalidDigestError unless a lowercase hex sha256."""
    if not SHA256_HEX.fullmatch(sha256):
        raise InvalidDigestError("not a 64-character lowercase hex sha256", location=prefix or "-")
    return f"{prefix}/{sha256[:2]}/{sha256}" if prefix else f"{sha256[:2]}/{sha256}"


@dataclass
class StoredObject:
    """One object opened for reading: its size, content type if the store keeps one, and its
    bytes in chunks. :meth:`close` releases the file or connection (the chunks close it when
    they run out)."""

    sha256: str
    size: int
    content_type: str | None
    _chunks: Iterator[bytes]
    _close: Callable[[], None]

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def close(self) -> None:
        self._close()


class MediaStore(Protocol):
    """Content-addressed media: the local directory and S3 twins (:mod:`.local`, :mod:`.s3`)."""

    #: Where the store is, for logs and errors: a directory or ``s3://bucket/prefix``.
    location: str

    def put(self, content: bytes, *, content_type: str | None = None) -> str:
        """Store ``content`` once under its sha256 and return the digest. An object already
        there with the same size is not written again."""
        ...

    def open(self, sha256: str) -> StoredObject | None:
        """The object named ``sha256`` for reading, or None if it is not there."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None:
        """The object's size in bytes, or None if it is not there."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the object; True if it was there."""
        ...

    def url(self, sha256: str) -> str:
        """Where the object lives, as a message's ``media_path`` records it."""
        ...
