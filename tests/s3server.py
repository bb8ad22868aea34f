"""A real S3 API for the tests: moto's server on a free port of 127.0.0.1.

moto is a dev dependency (``moto[server]``); without it the tests that need this fail on the
import, they are never skipped. The server keeps its buckets in this process, across a
:meth:`S3Server.stop` and :meth:`S3Server.start`, so a test can take the store away and bring
it back on the same address.
"""

from __future__ import annotations

import secrets
from typing import Any

from onboarding.media_store.s3 import S3Config, client_for

#: What the tests' S3 server accepts (moto takes any key pair).
S3_KEY_ID = "test-access-key"
S3_SECRET = "test-secret-key-0123456789"
S3_REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a dev dependency

        self._factory = ThreadedMotoServer
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.url = f"http://{host}:{self.port}"
        self.running = True

    def stop(self) -> None:
        """Close the listening socket: the endpoint refuses connections until :meth:`start`."""
        if self.running:
            self._server.stop()
            self.running = False

    def start(self) -> None:
        """Listen again on the same port, with the buckets and objects as they were."""
        if not self.running:
            self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            self.running = True

    def client(self) -> Any:
        """A boto3 client of this server."""
        return client_for(S3Config(self.url, S3_REGION, S3_KEY_ID, S3_SECRET, 2, 5.0))

    def new_bucket(self) -> str:
        """A new, empty bucket's name."""
        bucket = f"coexist-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def empty(self, bucket: str) -> None:
        """Delete every object of ``bucket``."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])

    def settings(self, store: str, *, retry_seconds: float = 30.0) -> dict[str, str]:
        """The media settings (by field name, as text) that point a process at ``store``."""
        return {
            "media_store": store,
            "media_s3_endpoint_url": self.url,
            "media_s3_region": S3_REGION,
            "media_s3_access_key_id": S3_KEY_ID,
            "media_s3_secret_access_key": S3_SECRET,
            "media_s3_max_attempts": "2",
            "media_s3_timeout": "2",
            "media_store_retry_seconds": str(retry_seconds),
        }

    def close(self) -> None:
        self.stop()
