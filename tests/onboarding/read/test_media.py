"""``GET /v1/media/{sha256}``: stored bytes streamed with their content type from the media store
(a directory or an S3 bucket), nothing outside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from benchmarks._harness import free_port
from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.media_store import CHUNK_SIZE, MediaStore
from onboarding.sandbox import Sandbox
from tests.conftest import use_s3
from tests.onboarding.read.helpers import FEED, message, onboarding, peer
from tests.s3server import S3Server

CONTENT = b"OggS voice note bytes " * 500
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def media_dir(settings: Settings, tmp_path: Path) -> Path:
    settings.media_dir = tmp_path / "media"
    return settings.media_dir


def stored(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    digest: str,
    mime: str | None,
) -> None:
    """A message whose media is stored under ``digest``."""
    with db.session() as session:
        oid = onboarding(session, sandbox, settings, cipher)
        message(
            session,
            oid,
            peer(session, oid, phone="16505550001"),
            "voice",
            1,
            type="audio",
            text_body=None,
            media_state="stored",
            media_mime=mime,
            media_sha256=digest,
        )


def test_stored_media_streams_with_its_content_type(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """The bytes stored under the digest, typed by the message that references them, never
    sniffed by a browser."""
    media_store.put(CONTENT)
    stored(db, sandbox, settings, cipher, DIGEST, "audio/ogg; codecs=opus")
    answer = client.get(f"/v1/media/{DIGEST}", headers=FEED)
    assert answer.status_code == 200
    assert answer.content == CONTENT
    assert answer.headers["content-type"] == "audio/ogg; codecs=opus"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-length"] == str(len(CONTENT))


def test_the_digest_in_upper_case_names_the_same_media(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """Hex digits are case-insensitive."""
    media_store.put(CONTENT)
    stored(db, sandbox, settings, cipher, DIGEST, "audio/ogg")
    answer = client.get(f"/v1/media/{DIGEST.upper()}", headers=FEED)
    assert answer.status_code == 200
    assert answer.content == CONTENT


def test_a_malformed_media_type_is_served_as_bytes(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """A stored mime type that is not a media type (or none) becomes application/octet-stream."""
    media_store.put(CONTENT)
    stored(db, sandbox, settings, cipher, DIGEST, "text/html\r\nSet-Cookie: a=b")
    answer = client.get(f"/v1/media/{DIGEST}", headers=FEED)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert "set-cookie" not in answer.headers


def test_a_digest_no_message_holds_is_404(
    client: TestClient, media_store: MediaStore, db: Database
) -> None:
    """An object in the media store that no stored message names is not served."""
    media_store.put(CONTENT)
    assert client.get(f"/v1/media/{DIGEST}", headers=FEED).status_code == 404


def test_a_stored_row_whose_file_is_gone_is_404(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """The row says stored but the object was removed: ``404``, not a server error."""
    stored(db, sandbox, settings, cipher, DIGEST, "audio/ogg")
    assert client.get(f"/v1/media/{DIGEST}", headers=FEED).status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fsecret",
        "..%2Fsecret",
        "%2e%2e",
        "ab" * 31 + "a",
        "ab" * 33,
        "zz" * 32,
        "ab" * 31 + "/..",
    ],
)
def test_a_name_that_is_not_a_digest_is_404_and_opens_nothing(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_dir: Path,
    name: str,
) -> None:
    """Only 64 hex characters name a file; path tricks never reach outside the media dir,
    even with a message row naming the same string."""
    (media_dir.parent / "secret").write_bytes(b"not for you")
    stored(db, sandbox, settings, cipher, name, "text/plain")
    answer = client.get(f"/v1/media/{name}", headers=FEED)
    assert answer.status_code == 404
    assert b"not for you" not in answer.content


def test_a_query_parameter_on_the_media_route_is_a_400(client: TestClient) -> None:
    """The media route takes no parameter; one given is named in a ``400``."""
    answer = client.get(f"/v1/media/{DIGEST}", params={"download": "1"}, headers=FEED)
    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {"field": "download", "message": "unknown parameter; this route takes none"}
    ]


def test_large_media_streams_in_chunks_with_its_length(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    media_store: MediaStore,
) -> None:
    """Media larger than one chunk arrives whole, its Content-Length the object's size."""
    big = bytes(range(256)) * (3 * CHUNK_SIZE // 256 + 7)
    digest = media_store.put(big, content_type="video/mp4")
    stored(db, sandbox, settings, cipher, digest, "video/mp4")
    answer = client.get(f"/v1/media/{digest}", headers=FEED)
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(len(big))
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.content == big


def test_an_unreachable_store_is_a_503_to_try_again(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    s3_server: S3Server,
) -> None:
    """The S3 endpoint not answering: ``503`` with Retry-After, as a problem, no credential."""
    use_s3(settings, s3_server)
    settings.media_s3_endpoint_url = f"http://127.0.0.1:{free_port()}"
    settings.media_s3_timeout = 1.0
    stored(db, sandbox, settings, cipher, DIGEST, "audio/ogg")
    answer = client.get(f"/v1/media/{DIGEST}", headers=FEED)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["error"] == "media_store_unavailable"
    assert settings.media_s3_secret_access_key.get_secret_value() not in answer.text


def test_a_store_that_refuses_the_read_is_a_500_problem(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    s3_server: S3Server,
) -> None:
    """A bucket that does not exist: ``500`` as a problem naming the store error, no traceback."""
    use_s3(settings, s3_server)
    settings.media_store = "s3://no-such-bucket-here"
    stored(db, sandbox, settings, cipher, DIGEST, "audio/ogg")
    answer = client.get(f"/v1/media/{DIGEST}", headers=FEED)
    assert answer.status_code == 500
    assert answer.json()["error"] == "media_store_error"
