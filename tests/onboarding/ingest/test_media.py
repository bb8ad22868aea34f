"""Media downloads: stored by content hash, sha256 checked, bounded retries, 7-day life."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time
from sqlalchemy import delete

from benchmarks._harness import free_port
from config import Settings
from models import Database, MediaState, Message, Onboarding, utcnow
from models.crypto import TokenCipher
from onboarding.ingest import media
from onboarding.media_store import MediaStore, MediaStoreError, S3MediaStore, store_for
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater
from onboarding.signup.intake import SignupBody, accept_signup
from tests.conftest import use_s3
from tests.s3server import S3Server

CONTENT = b"\xff\xd8\xff\xe0 a small jpeg" * 10
DIGEST = hashlib.sha256(CONTENT).hexdigest()

Handler = Callable[[httpx.Request], httpx.Response]


def meta_media(
    url: str = "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/24230790383178626"):
            return httpx.Response(
                200,
                json={
                    "url": url,
                    "mime_type": "image/jpeg",
                    "sha256": DIGEST,
                    "file_size": len(CONTENT),
                    "id": "24230790383178626",
                    "messaging_product": "whatsapp",
                },
            )
        assert request.headers["authorization"] == "Bearer EAAGbusiness"
        return httpx.Response(200, content=CONTENT)

    return handler


@pytest.fixture
def message_id(db: Database, settings: Settings, cipher: TokenCipher, tmp_path: Path) -> int:
    settings.media_dir = tmp_path / "media"
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQc",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": "1"},
                },
            }
        )
        outcome = accept_signup(session, body, settings=settings, cipher=cipher)
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.token_ciphertext = cipher.encrypt("EAAGbusiness")
        message = Message(
            onboarding_id=onboarding.id,
            wamid="wamid.M",
            thread="16505550000",
            direction="inbound",
            source="history",
            sent_at=utcnow(),
            type="image",
            media_state=MediaState.AWAITING.value,
            media_id="24230790383178626",
            media_sha256=DIGEST,
            media_id_at=utcnow(),
            media_attempts=0,
        )
        session.add(message)
        session.flush()
        return message.id


def run(db: Database, settings: Settings, cipher: TokenCipher, handler: Handler, mid: int) -> str:
    graph = GraphClient(
        app_id="1", app_secret="s", transport=httpx.MockTransport(handler), max_wait=0.001
    )
    with db.session() as session:
        return media.download(session, graph, settings=settings, cipher=cipher, message_id=mid)


def load(db: Database, mid: int) -> Message:
    with db.sessionmaker() as session:
        return session.get_one(Message, mid)


def test_download_stores_bytes_under_their_hash(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """GET /{media-id}, then the URL with the bearer token; stored once under its sha256."""
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED
    message = load(db, message_id)
    path = Path(message.media_path or "")
    assert path.name == DIGEST
    assert path.read_bytes() == CONTENT
    assert message.media_size == len(CONTENT)
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED  # no-op


def test_no_media_is_downloaded_for_an_erased_onboarding(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """Once its onboarding's erasure began, a message's media is not fetched nor stored."""
    with db.session() as session:
        message = session.get_one(Message, message_id)
        session.get_one(Onboarding, message.onboarding_id).erased_at = utcnow()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no Graph call expected: {request.url}")

    assert run(db, settings, cipher, refuse, message_id) == "erased"
    assert not store_for(settings).exists(DIGEST)
    assert load(db, message_id).media_attempts == 0


def test_sha256_mismatch_is_retried_then_failed(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """Bytes that do not match Meta's sha256 are never stored; retries are bounded."""
    with db.session() as session:
        session.get_one(Message, message_id).media_sha256 = "00" * 32
    for _ in range(settings.media_max_attempts - 1):
        with pytest.raises(RetryLater):
            run(db, settings, cipher, meta_media(), message_id)
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.FAILED
    assert "sha256" in (load(db, message_id).media_error or "")
    assert not (settings.media_dir / DIGEST[:2] / DIGEST).exists()


def test_transient_errors_retry_a_bounded_number_of_times(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """A media host down keeps the media awaiting with a retry, then fails with the reason."""

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            json={
                "error": {
                    "message": "Service temporarily unavailable",
                    "type": "OAuthException",
                    "code": 2,
                }
            },
        )

    for _ in range(settings.media_max_attempts - 1):
        with pytest.raises(RetryLater):
            run(db, settings, cipher, down, message_id)
        assert load(db, message_id).media_state == MediaState.AWAITING
    assert run(db, settings, cipher, down, message_id) == MediaState.FAILED
    assert "gave up" in (load(db, message_id).media_error or "")


def test_media_ids_die_after_seven_days(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """A media id older than 7 days is not fetched: the media is expired."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return meta_media()(request)

    with freeze_time(utcnow() + timedelta(days=8)):
        assert run(db, settings, cipher, handler, message_id) == MediaState.EXPIRED
    assert calls == []


def test_overdue_awaiting_media_is_expired_by_the_watchdog(
    db: Database, settings: Settings, message_id: int
) -> None:
    """The beat watchdog expires awaiting media past the 7-day life."""
    with freeze_time(utcnow() + timedelta(days=8)), db.session() as session:
        assert media.expire_overdue(session, settings=settings) == 1
    assert load(db, message_id).media_state == MediaState.EXPIRED


def test_media_url_on_another_host_never_gets_the_token(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """A media URL outside Meta's media hosts is refused without sending the token there."""
    state = run(db, settings, cipher, meta_media("https://evil.example/steal"), message_id)
    assert state == MediaState.FAILED
    assert "not an allowed media host" in (load(db, message_id).media_error or "")


def test_media_over_the_size_limit_fails(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """Media larger than COEX_MEDIA_MAX_BYTES is refused with the reason."""
    settings.media_max_bytes = 64
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.FAILED
    assert "limit" in (load(db, message_id).media_error or "")


def test_sha256_in_base64_is_accepted() -> None:
    """Meta's sha256 may come hex or base64 encoded."""
    digest = hashlib.sha256(CONTENT).digest()
    assert media.sha256_matches(base64.b64encode(digest).decode(), CONTENT)
    assert media.sha256_matches(digest.hex().upper(), CONTENT)
    assert not media.sha256_matches("AAAA", CONTENT)


@pytest.mark.parametrize("when", ["before_the_answer", "after_the_answer"])
def test_a_message_removed_during_its_download_ends_missing(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, when: str
) -> None:
    """A group chat's chunk may drop a media update's message while its media downloads: the task
    ends ``missing`` instead of failing on the vanished row."""
    serve = meta_media()

    def handler(request: httpx.Request) -> httpx.Response:
        if when == "before_the_answer" or not request.url.path.endswith("/24230790383178626"):
            with db.session() as other:
                other.execute(delete(Message).where(Message.id == message_id))
        return serve(request)

    assert run(db, settings, cipher, handler, message_id) == "missing"
    with db.sessionmaker() as session:
        assert session.get(Message, message_id) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", "https"),
        ("https://lookaside.fbsbx.com:8443/whatsapp_business/attachments/?mid=1", "port 8443"),
        ("http://graph.facebook.com:8080/v25.0/media", "https"),
        ("https://graph.facebook.com:444/v25.0/media", "port 444"),
    ],
)
def test_media_url_off_https_or_its_default_port_never_gets_the_token(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, url: str, reason: str
) -> None:
    """An allowed host over plain HTTP or on another port is refused before any byte is sent."""
    sent: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers and request.url.path != "/v25.0/24230790383178626":
            sent.append(request.url)
        return meta_media(url)(request)

    assert run(db, settings, cipher, handler, message_id) == MediaState.FAILED
    assert reason in (load(db, message_id).media_error or "")
    assert sent == []


@pytest.mark.parametrize(
    "url",
    [
        "https://lookaside.fbsbx.com/whatsapp_business/\x01attachments/?mid=1",
        "https://lookaside.fbsbx.com:99999/attachments",
        "https://lookaside.fbsbx.com/\n/attachments",
    ],
)
def test_media_url_that_does_not_parse_fails_at_once_with_its_reason(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, url: str
) -> None:
    """A media URL with a control character or a bad port ends failed after one attempt."""
    assert run(db, settings, cipher, meta_media(url), message_id) == MediaState.FAILED
    message = load(db, message_id)
    assert message.media_attempts == 1
    assert "media url" in (message.media_error or "")


def test_no_attempt_is_made_past_the_budget_whatever_ended_the_earlier_ones(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """Media whose attempts are used up (by failures nothing classified) ends failed, unfetched."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return meta_media()(request)

    with db.session() as session:
        row = session.get_one(Message, message_id)
        row.media_attempts = settings.media_max_attempts
    assert run(db, settings, cipher, handler, message_id) == MediaState.FAILED
    message = load(db, message_id)
    assert message.media_attempts == settings.media_max_attempts
    assert f"gave up after {settings.media_max_attempts} attempts" in (message.media_error or "")
    assert calls == []


def test_stored_media_is_named_by_the_hex_digest_even_when_meta_sent_base64(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int
) -> None:
    """Once stored, a message's media_sha256 is the hex digest its file is named by, the key
    the read API serves it under, whatever encoding Meta's sha256 came in."""
    with db.session() as session:
        row = session.get_one(Message, message_id)
        row.media_sha256 = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED
    assert load(db, message_id).media_sha256 == DIGEST


# -- the media store (a directory, or a bucket on moto's S3 server) -------------------------


def second_message(db: Database, message_id: int, wamid: str) -> int:
    """Another message of the same onboarding whose media has the same bytes."""
    with db.session() as session:
        first = session.get_one(Message, message_id)
        row = Message(
            onboarding_id=first.onboarding_id,
            wamid=wamid,
            thread=first.thread,
            direction="inbound",
            source="history",
            sent_at=utcnow(),
            type="image",
            media_state=MediaState.AWAITING.value,
            media_id="24230790383178626",
            media_sha256=DIGEST,
            media_mime="image/webp",
            media_id_at=utcnow(),
            media_attempts=0,
        )
        session.add(row)
        session.flush()
        return row.id


def test_download_puts_the_bytes_in_the_configured_store(
    db: Database,
    settings: Settings,
    cipher: TokenCipher,
    message_id: int,
    media_store: MediaStore,
) -> None:
    """Stored media is in the store under its sha256, and media_path is the object's URL."""
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED
    message = load(db, message_id)
    opened = media_store.open(DIGEST)
    assert opened is not None
    assert b"".join(opened.chunks()) == CONTENT
    assert (message.media_sha256, message.media_path) == (DIGEST, media_store.url(DIGEST))


def test_a_sha256_mismatch_puts_nothing_in_the_store(
    db: Database,
    settings: Settings,
    cipher: TokenCipher,
    message_id: int,
    media_store: MediaStore,
) -> None:
    """Bytes that do not match Meta's digest never reach the store."""
    with db.session() as session:
        session.get_one(Message, message_id).media_sha256 = "00" * 32
    with pytest.raises(RetryLater):
        run(db, settings, cipher, meta_media(), message_id)
    assert media_store.exists(DIGEST) is False


def test_a_second_message_with_the_same_bytes_writes_the_s3_object_once(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, s3_server: S3Server
) -> None:
    """The second download finds the object there (same size) and writes nothing: the object
    keeps the first message's content type."""
    use_s3(settings, s3_server)
    store = store_for(settings)
    assert isinstance(store, S3MediaStore)
    other = second_message(db, message_id, "wamid.SAME")
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED
    assert run(db, settings, cipher, meta_media(), other) == MediaState.STORED
    head = store.client.head_object(Bucket=store.bucket, Key=store.key(DIGEST))
    assert head["ContentType"] == "image/jpeg"
    assert load(db, other).media_path == load(db, message_id).media_path


def test_an_unreachable_store_retries_later_and_loses_nothing(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, s3_server: S3Server
) -> None:
    """With the store down the media stays awaiting, its attempt given back, a retry asked for;
    once the store is back the same media is stored."""
    use_s3(settings, s3_server)
    reachable = settings.media_s3_endpoint_url
    settings.media_s3_endpoint_url = f"http://127.0.0.1:{free_port()}"
    settings.media_s3_timeout = 1.0
    with pytest.raises(RetryLater) as raised:
        run(db, settings, cipher, meta_media(), message_id)
    assert raised.value.countdown == settings.media_store_retry_seconds
    message = load(db, message_id)
    assert (message.media_state, message.media_attempts) == (MediaState.AWAITING, 0)
    assert "media store unavailable" in (message.media_error or "")
    settings.media_s3_endpoint_url = reachable
    assert run(db, settings, cipher, meta_media(), message_id) == MediaState.STORED
    assert store_for(settings).exists(DIGEST)


def test_a_store_that_refuses_counts_the_attempt_and_keeps_the_reason(
    db: Database, settings: Settings, cipher: TokenCipher, message_id: int, s3_server: S3Server
) -> None:
    """A bucket that does not exist is no outage: the error is raised, the attempt counted,
    the S3 code kept in media_error, and the media not stored."""
    use_s3(settings, s3_server)
    settings.media_store = "s3://no-such-bucket-here"
    with pytest.raises(MediaStoreError):
        run(db, settings, cipher, meta_media(), message_id)
    message = load(db, message_id)
    assert (message.media_state, message.media_attempts) == (MediaState.AWAITING, 1)
    assert "NoSuchBucket" in (message.media_error or "")
