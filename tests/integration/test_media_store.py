"""Media on a shared S3 store under the real stack: the ingest worker downloads into the bucket
(moto's S3 server), the web app streams it back, and a store that goes away holds a download
back instead of losing it. Erasure runs against PostgreSQL and the same bucket."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from benchmarks._harness import (
    BrokerClient,
    ManagedProcess,
    StackConfig,
    WebServer,
    poll_until,
)
from config import Settings
from config.settings import s3_location
from models import Database, MediaState, Message, utcnow
from models.crypto import TokenCipher
from onboarding.media_store import MediaStore, S3MediaStore
from onboarding.media_store.erasure import erase_media
from onboarding.sandbox import Sandbox, SandboxServer
from onboarding.sandbox.media_items import MediaItem, media_bytes
from tests.onboarding.helpers import signup
from tests.s3server import S3Server

pytestmark = pytest.mark.integration

DOWNLOAD = "coexist.ingest.download_media"
JPEG = "image/jpeg"


@pytest.fixture(autouse=True)
def _media_stack(
    ingest_worker: ManagedProcess, s3_server: S3Server, media_bucket: str
) -> Iterator[None]:
    """The ingest worker runs, the store answers and the bucket starts empty."""
    if not ingest_worker.running:
        pytest.fail(f"{ingest_worker.name} exited:\n{ingest_worker.log_tail()}", pytrace=False)
    s3_server.start()
    s3_server.empty(s3_location(media_bucket)[0])
    yield
    s3_server.start()


@pytest.fixture
def settings(stack_config: StackConfig, sandbox_server: SandboxServer) -> Settings:
    return stack_config.settings(sandbox_server.url)


@pytest.fixture
def cipher(stack_config: StackConfig) -> TokenCipher:
    return TokenCipher(stack_config.token_keys)


class Business:
    """An onboarding with its business token, whose number's media the sandbox serves."""

    def __init__(
        self, db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
    ) -> None:
        self.db = db
        self.sandbox = sandbox
        with db.session() as session:
            onboarding = signup(session, sandbox, settings, cipher, include_phone_number_id=True)
            business_id = sandbox.owner_of(onboarding.waba_id or "")
            onboarding.token_ciphertext = cipher.encrypt(sandbox.issue_token(business_id))
            self.onboarding_id = onboarding.id
            self.phone_number_id = onboarding.phone_number_id or ""

    def awaiting(self, wamid: str, content_key: str, size: int = 300_000) -> tuple[int, bytes]:
        """A message whose media (``content_key``'s bytes) Meta offers; its id and the bytes."""
        content = media_bytes(content_key, size, JPEG)
        digest = hashlib.sha256(content).hexdigest()
        media_id = str(9_000_000_000 + int(hashlib.sha256(wamid.encode()).hexdigest()[:8], 16))
        item = MediaItem(media_id, wamid, "image", JPEG, digest, size, content_key)
        self.sandbox.register_media(self.phone_number_id, [item])
        with self.db.session() as session:
            row = Message(
                onboarding_id=self.onboarding_id,
                wamid=wamid,
                thread="16505550000",
                direction="inbound",
                source="history",
                sent_at=utcnow(),
                type="image",
                media_state=MediaState.AWAITING.value,
                media_id=media_id,
                media_sha256=digest,
                media_mime=JPEG,
                media_id_at=utcnow(),
                media_attempts=0,
            )
            session.add(row)
            session.flush()
            return row.id, content


def message(db: Database, message_id: int) -> Message:
    with db.sessionmaker() as session:
        return session.get_one(Message, message_id)


def stored(db: Database, message_id: int, timeout: float = 60.0) -> Message:
    return poll_until(
        lambda: message(db, message_id),
        lambda row: row.media_state == MediaState.STORED.value,
        timeout=timeout,
        what=f"message {message_id}'s media to be stored",
        describe=lambda row: f"{row.media_state}: {row.media_error}",
    )


def objects(s3_server: S3Server, media_bucket: str) -> list[str]:
    bucket, prefix = s3_location(media_bucket)
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_download_lands_in_the_bucket_and_the_read_api_streams_it_back(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    broker: BrokerClient,
    web: WebServer,
    stack_config: StackConfig,
    media_store: MediaStore,
) -> None:
    """The worker puts the media in S3; GET /v1/media/{sha256} on the web app streams the same
    bytes with the message's content type and length."""
    message_id, content = Business(db, sandbox, settings, cipher).awaiting("wamid.IMG", "img")
    broker.send(DOWNLOAD, message_id)
    row = stored(db, message_id)
    digest = hashlib.sha256(content).hexdigest()
    assert (row.media_sha256, row.media_path) == (digest, media_store.url(digest))
    assert isinstance(media_store, S3MediaStore)
    assert (row.media_path or "").startswith(f"s3://{media_store.bucket}/media/")
    answer = httpx.get(
        f"{web.url}/v1/media/{digest}",
        headers={"Authorization": f"Bearer {stack_config.feed_token}"},
        trust_env=False,
    )
    assert answer.status_code == 200
    assert answer.content == content
    assert answer.headers["content-type"] == JPEG
    assert answer.headers["content-length"] == str(len(content))


def test_two_messages_with_the_same_media_keep_one_object(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    broker: BrokerClient,
    s3_server: S3Server,
    media_bucket: str,
) -> None:
    """Two onboardings' messages with the same bytes end stored on one object of the bucket."""
    first, content = Business(db, sandbox, settings, cipher).awaiting("wamid.A", "shared")
    second, _ = Business(db, sandbox, settings, cipher).awaiting("wamid.B", "shared")
    broker.send(DOWNLOAD, first)
    broker.send(DOWNLOAD, second)
    assert stored(db, first).media_path == stored(db, second).media_path
    digest = hashlib.sha256(content).hexdigest()
    assert objects(s3_server, media_bucket) == [f"media/{digest[:2]}/{digest}"]


def test_the_store_away_holds_the_download_back_and_it_lands_when_back(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    broker: BrokerClient,
    s3_server: S3Server,
    media_bucket: str,
) -> None:
    """With S3 refusing connections the media stays awaiting, its attempt given back and the
    reason noted; the task's bounded retries store it once S3 is back."""
    message_id, content = Business(db, sandbox, settings, cipher).awaiting("wamid.HELD", "held")
    s3_server.stop()
    broker.send(DOWNLOAD, message_id)
    held = poll_until(
        lambda: message(db, message_id),
        lambda row: "media store unavailable" in (row.media_error or ""),
        timeout=30.0,
        what="the download to meet the unreachable store",
        describe=lambda row: f"{row.media_state}: {row.media_error}",
    )
    assert (held.media_state, held.media_attempts) == (MediaState.AWAITING.value, 0)
    s3_server.start()
    row = stored(db, message_id)
    assert row.media_sha256 == hashlib.sha256(content).hexdigest()
    assert row.media_error is None
    digest = row.media_sha256
    assert objects(s3_server, media_bucket) == [f"media/{digest[:2]}/{digest}"]


def test_erasure_deletes_an_unshared_object_and_keeps_a_shared_one(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """Erasing one onboarding's messages deletes its own media from the bucket and keeps the
    media another onboarding's message also holds."""
    mine = Business(db, sandbox, settings, cipher)
    theirs = Business(db, sandbox, settings, cipher)
    alone_id, alone = mine.awaiting("wamid.MINE", "mine", size=2_000)
    shared_id, shared = mine.awaiting("wamid.OURS", "ours", size=2_000)
    kept_id, _ = theirs.awaiting("wamid.THEIRS", "ours", size=2_000)
    with db.session() as session:
        for mid, content in ((alone_id, alone), (shared_id, shared), (kept_id, shared)):
            row = session.get_one(Message, mid)
            row.media_sha256 = media_store.put(content, content_type=JPEG)
            row.media_state = MediaState.STORED.value
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, [alone_id, shared_id])
    alone_digest, shared_digest = (hashlib.sha256(c).hexdigest() for c in (alone, shared))
    assert (erased.deleted, erased.shared) == ([alone_digest], [shared_digest])
    assert media_store.exists(alone_digest) is False
    assert media_store.exists(shared_digest) is True
