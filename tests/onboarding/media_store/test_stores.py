"""The media store's twins, side by side: a local directory and an S3 bucket (moto's server)
answer the same contract."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from benchmarks._harness import free_port
from config import Settings
from onboarding.media_store import (
    CHUNK_SIZE,
    InvalidDigestError,
    LocalMediaStore,
    MediaStore,
    MediaStoreError,
    S3MediaStore,
    StoreUnavailable,
    store_for,
)
from onboarding.media_store.s3 import S3Config
from tests.conftest import use_s3
from tests.s3server import S3_KEY_ID, S3_SECRET, S3Server

CONTENT = b"\x89PNG a picture " * 10_000  # several chunks
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def read_all(store: MediaStore, digest: str) -> bytes:
    opened = store.open(digest)
    assert opened is not None
    return b"".join(opened.chunks())


def test_put_returns_the_sha256_and_the_bytes_read_back_the_same(media_store: MediaStore) -> None:
    """What is put comes back, byte for byte, under the hex sha256 of its content."""
    assert media_store.put(CONTENT, content_type="image/png") == DIGEST
    assert read_all(media_store, DIGEST) == CONTENT


def test_open_reads_in_chunks_and_tells_the_size(media_store: MediaStore) -> None:
    """An opened object knows its size and yields chunks no larger than CHUNK_SIZE."""
    media_store.put(CONTENT)
    opened = media_store.open(DIGEST)
    assert opened is not None
    assert opened.size == len(CONTENT)
    chunks = list(opened.chunks())
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE


def test_exists_and_size_answer_for_present_and_absent_objects(media_store: MediaStore) -> None:
    """exists and size say whether an object is there and how large it is."""
    assert (media_store.exists(DIGEST), media_store.size(DIGEST)) == (False, None)
    media_store.put(CONTENT)
    assert (media_store.exists(DIGEST), media_store.size(DIGEST)) == (True, len(CONTENT))


def test_an_absent_object_opens_as_none(media_store: MediaStore) -> None:
    """Opening a digest nothing was stored under gives None."""
    assert media_store.open("ab" * 32) is None


def test_delete_removes_the_object_once(media_store: MediaStore) -> None:
    """delete answers True when it removed the object and False when none was there."""
    media_store.put(CONTENT)
    assert media_store.delete(DIGEST) is True
    assert media_store.exists(DIGEST) is False
    assert media_store.delete(DIGEST) is False


@pytest.mark.parametrize("name", ["AB" * 32, "ab" * 31, "../" + "ab" * 31, "zz" * 32, ""])
def test_only_a_lowercase_hex_sha256_is_a_key(media_store: MediaStore, name: str) -> None:
    """Any other name is refused before the store is touched."""
    with pytest.raises(InvalidDigestError):
        media_store.open(name)
    with pytest.raises(InvalidDigestError):
        media_store.delete(name)


def test_local_objects_live_under_the_digest_prefix(settings: Settings, tmp_path: Path) -> None:
    """A directory store keeps ``<dir>/<sha256[:2]>/<sha256>`` and names it as the URL."""
    store = LocalMediaStore(tmp_path / "media")
    store.put(CONTENT)
    path = tmp_path / "media" / DIGEST[:2] / DIGEST
    assert path.read_bytes() == CONTENT
    assert store.url(DIGEST) == str(path)


def test_a_local_object_of_the_same_size_is_not_written_again(tmp_path: Path) -> None:
    """A second put of the same content leaves the first file as it was (same inode)."""
    store = LocalMediaStore(tmp_path)
    store.put(CONTENT)
    before = (tmp_path / DIGEST[:2] / DIGEST).stat()
    store.put(CONTENT)
    after = (tmp_path / DIGEST[:2] / DIGEST).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_truncated_local_object_is_written_whole_again(tmp_path: Path) -> None:
    """A file shorter than the content (a write cut off elsewhere) is replaced on put."""
    store = LocalMediaStore(tmp_path)
    path = tmp_path / DIGEST[:2] / DIGEST
    path.parent.mkdir()
    path.write_bytes(CONTENT[:10])
    store.put(CONTENT)
    assert path.read_bytes() == CONTENT
    assert [p.name for p in path.parent.iterdir()] == [DIGEST]  # no temporary file left


def test_a_local_store_that_cannot_be_written_is_unavailable(tmp_path: Path) -> None:
    """An OSError (here: the directory is a file) is StoreUnavailable, not a crash."""
    (tmp_path / "media").write_bytes(b"not a directory")
    with pytest.raises(StoreUnavailable):
        LocalMediaStore(tmp_path / "media").put(CONTENT)


def test_s3_objects_live_under_the_prefix_with_type_and_digest(
    settings: Settings, s3_server: S3Server
) -> None:
    """An S3 store keeps ``<prefix>/<sha256[:2]>/<sha256>`` with its content type and sha256."""
    url = use_s3(settings, s3_server, prefix="tenant/media")
    store = store_for(settings)
    assert isinstance(store, S3MediaStore)
    store.put(CONTENT, content_type="image/png")
    key = f"tenant/media/{DIGEST[:2]}/{DIGEST}"
    head = store.client.head_object(Bucket=store.bucket, Key=key)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"sha256": DIGEST}
    assert store.url(DIGEST) == f"{url.split('/tenant')[0]}/{key}"


def test_an_s3_object_of_the_same_size_is_not_written_again(
    settings: Settings, s3_server: S3Server
) -> None:
    """A second put of the same content sends no second PUT (the object's ETag and date stay)."""
    use_s3(settings, s3_server)
    store = store_for(settings)
    assert isinstance(store, S3MediaStore)
    store.put(CONTENT, content_type="image/png")
    key = store.key(DIGEST)
    before = store.client.head_object(Bucket=store.bucket, Key=key)
    store.put(CONTENT, content_type="image/jpeg")
    after = store.client.head_object(Bucket=store.bucket, Key=key)
    assert (after["LastModified"], after["ContentType"]) == (before["LastModified"], "image/png")


def test_an_unreachable_s3_endpoint_is_unavailable_after_bounded_attempts(
    settings: Settings,
) -> None:
    """Nothing listening at the endpoint: StoreUnavailable once boto3's attempts are spent."""
    closed_port = free_port()
    settings.media_store = "s3://coexist-media"
    settings.media_s3_endpoint_url = f"http://127.0.0.1:{closed_port}"
    settings.media_s3_access_key_id = S3_KEY_ID
    settings.media_s3_secret_access_key = SecretStr(S3_SECRET)
    settings.media_s3_max_attempts = 2
    settings.media_s3_timeout = 1.0
    store = store_for(settings)
    with pytest.raises(StoreUnavailable) as raised:
        store.put(CONTENT)
    assert S3_SECRET not in str(raised.value)
    assert raised.value.location == "s3://coexist-media"


def test_a_missing_bucket_is_a_store_error_not_a_transient_one(
    settings: Settings, s3_server: S3Server
) -> None:
    """A bucket that does not exist is a setting to fix: MediaStoreError naming the code."""
    use_s3(settings, s3_server)
    settings.media_store = "s3://no-such-bucket-here"
    with pytest.raises(MediaStoreError) as raised:
        store_for(settings).put(CONTENT)
    assert not isinstance(raised.value, StoreUnavailable)
    assert "NoSuchBucket" in str(raised.value)


def test_the_s3_config_never_shows_its_secret_key() -> None:
    """The shared client's config (a cache key, so it may be printed) hides the secret key."""
    config = S3Config("http://127.0.0.1:9000", "us-east-1", S3_KEY_ID, S3_SECRET, 2, 1.0)
    assert S3_SECRET not in repr(config)
