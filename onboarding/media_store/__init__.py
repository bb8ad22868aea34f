"""Where downloaded media is kept: a local directory or an S3-compatible bucket.

One interface (:class:`MediaStore`: put, open, exists, size, delete, url) with its two twins side
by side, :class:`LocalMediaStore` and :class:`S3MediaStore`; :func:`store_for` picks one from
``COEX_MEDIA_STORE``. Downloads write through it (:mod:`onboarding.ingest.media`), the read API
streams from it (:mod:`onboarding.read.media`), and erasure removes objects no remaining message
needs (:mod:`.erasure`). Every host running coexist must be given the same store.
"""

from __future__ import annotations

from pathlib import Path

from config import Settings
from config.settings import s3_location
from onboarding.media_store.base import (
    CHUNK_SIZE,
    InvalidDigestError,
    MediaStore,
    MediaStoreError,
    StoredObject,
    StoreUnavailable,
    key_for,
)
from onboarding.media_store.local import LocalMediaStore
from onboarding.media_store.s3 import S3Config, S3MediaStore, client_for

__all__ = [
    "CHUNK_SIZE",
    "InvalidDigestError",
    "LocalMediaStore",
    "MediaStore",
    "MediaStoreError",
    "S3MediaStore",
    "StoreUnavailable",
    "StoredObject",
    "key_for",
    "store_for",
]


def store_for(settings: Settings) -> MediaStore:
    """The media store the settings name (S3 clients are built once per process and reused)."""
    location = settings.media_location
    if not location.startswith("s3://"):
        return LocalMediaStore(Path(location))
    bucket, prefix = s3_location(location)
    secret = settings.media_s3_secret_access_key.get_secret_value()
    config = S3Config(
        endpoint_url=settings.media_s3_endpoint_url or None,
        region=settings.media_s3_region or None,
        access_key_id=settings.media_s3_access_key_id or None,
        secret_access_key=secret or None,
        max_attempts=settings.media_s3_max_attempts,
        timeout=settings.media_s3_timeout,
    )
    return S3MediaStore(client_for(config), bucket, prefix)
