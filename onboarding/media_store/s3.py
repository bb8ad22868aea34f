"""Media in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2...): objects
``<prefix>/<sha256[:2]>/<sha256>`` with their content type, and the sha256 as metadata.

Each call is retried by boto3's standard retry mode up to ``COEX_MEDIA_S3_MAX_ATTEMPTS`` times,
within ``COEX_MEDIA_S3_TIMEOUT`` per connect and per read. What still fails is sorted here:
no connection, a timeout, throttling or a 5xx is :class:`.StoreUnavailable` (the download is
tried again later); anything else (no such bucket, access denied, no credentials) is a
:class:`.MediaStoreError` naming the S3 error code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from onboarding.media_store.base import (
    CHUNK_SIZE,
    MediaStoreError,
    StoredObject,
    StoreUnavailable,
    key_for,
)

#: S3 error codes that mean "later" rather than "never".
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
FALLBACK_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class S3Config:
    """How to reach the bucket; one boto3 client is shared per distinct config."""

    endpoint_url: str | None
    region: str | None
    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)
    max_attempts: int
    timeout: float


@lru_cache(maxsize=8)
def client_for(config: S3Config) -> Any:
    """A boto3 S3 client (thread-safe, so shared by a process's threads)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        config=Config(
            retries={"mode": "standard", "max_attempts": config.max_attempts},
            connect_timeout=config.timeout,
            read_timeout=config.timeout,
            # Buckets as a path on custom endpoints (MinIO and test servers serve no
            # bucket subdomains); AWS chooses for itself.
            s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        ),
    )


class S3MediaStore:
    """The S3 twin of :class:`onboarding.media_store.base.MediaStore`."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def key(self, sha256: str) -> str:
        return key_for(sha256, self.prefix)

    def put(self, content: bytes, *, content_type: str | None = None) -> str:
        digest = hashlib.sha256(content).hexdigest()
        if self.size(digest) == len(content):
            return digest
        self._call(
            "put_object",
            Bucket=self.bucket,
            Key=self.key(digest),
            Body=content,
            ContentType=content_type or FALLBACK_TYPE,
            Metadata={"sha256": digest},
        )
        return digest

    def open(self, sha256: str) -> StoredObject | None:
        answer = self._call("get_object", Bucket=self.bucket, Key=self.key(sha256), missing=True)
        if answer is None:
            return None
        body = answer["Body"]
        return StoredObject(
            sha256,
            int(answer["ContentLength"]),
            answer.get("ContentType"),
            body.iter_chunks(CHUNK_SIZE),
            body.close,
        )

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        answer = self._call("head_object", Bucket=self.bucket, Key=self.key(sha256), missing=True)
        return None if answer is None else int(answer["ContentLength"])

    def delete(self, sha256: str) -> bool:
        if not self.exists(sha256):
            return False
        self._call("delete_object", Bucket=self.bucket, Key=self.key(sha256))
        return True

    def url(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self.key(sha256)}"

    def _call(self, operation: str, *, missing: bool = False, **params: Any) -> Any:
        """The one place that calls S3; its errors become the store's (None: not there)."""
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            # Not NoSuchBucket, a 404 too: that is a setting to fix, not an absent object. (A
            # HEAD has no body to tell the two apart; the write or read that follows does.)
            if missing and code in MISSING_CODES:
                return None
            if code in TRANSIENT_CODES or status >= 500 or status == 429:
                raise StoreUnavailable(
                    f"S3 {operation} failed: {code or status}", location=self.location
                ) from exc
            raise MediaStoreError(
                f"S3 {operation} refused: {code or status}", location=self.location
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StoreUnavailable(
                f"S3 {operation} failed: {type(exc).__name__}", location=self.location
            ) from exc
        except BotoCoreError as exc:
            raise MediaStoreError(
                f"S3 {operation} failed: {type(exc).__name__}", location=self.location
            ) from exc
