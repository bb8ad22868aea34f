"""Media in a local (or shared, mounted) directory: ``<dir>/<sha256[:2]>/<sha256>``.

A write goes to a temporary file in the object's folder, is flushed to disk, then renamed over
the name: a reader sees the whole object or none. An ``OSError`` (disk full, a mount gone) is
:class:`.StoreUnavailable`: the download is tried again later rather than lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from onboarding.media_store.base import (
    CHUNK_SIZE,
    StoredObject,
    StoreUnavailable,
    key_for,
)


class LocalMediaStore:
    """The directory twin of :class:`onboarding.media_store.base.MediaStore`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path(self, sha256: str) -> Path:
        return self.root / key_for(sha256)

    def put(self, content: bytes, *, content_type: str | None = None) -> str:
        digest = hashlib.sha256(content).hexdigest()
        path = self.path(digest)
        try:
            if path.is_file() and path.stat().st_size == len(content):
                return digest
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreUnavailable(f"writing media failed: {exc}", location=self.location) from exc
        return digest

    def open(self, sha256: str) -> StoredObject | None:
        path = self.path(sha256)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"reading media failed: {exc}", location=self.location) from exc
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            handle.close()
            raise StoreUnavailable(f"reading media failed: {exc}", location=self.location) from exc
        return StoredObject(
            sha256,
            size,
            None,
            iter(lambda: handle.read(CHUNK_SIZE), b""),
            handle.close,
        )

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"reading media failed: {exc}", location=self.location) from exc

    def delete(self, sha256: str) -> bool:
        path = self.path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"deleting media failed: {exc}", location=self.location) from exc
        with contextlib.suppress(OSError):  # the folder may still hold others, or be gone
            path.parent.rmdir()
        return True

    def url(self, sha256: str) -> str:
        return str(self.path(sha256))
