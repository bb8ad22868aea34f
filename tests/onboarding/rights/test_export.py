"""The data export: one zip archive of everything held for an onboarding, counted back whole."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from config import Settings
from models import Alert, Database, FollowUp, Notification, Onboarding
from models.crypto import TokenCipher
from onboarding.cli import app as cli
from onboarding.media_store import store_for
from onboarding.rights.export import (
    CHUNK_BYTES,
    OnboardingNotFoundError,
    export_archive,
)
from onboarding.runtime import Runtime
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, APP_SECRET
from tests.onboarding.read.helpers import T0, contact, message, peer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PHOTO = b"\xff\xd8\xff\xe0 a photo"
VOICE = b"OggS a voice note"
MISSING = hashlib.sha256(b"never stored").hexdigest()


@dataclass(frozen=True)
class Held:
    """What the test onboarding holds: its id and what the export must count back."""

    onboarding_id: int
    messages: int
    contacts: int
    peers: int
    media: dict[str, bytes]


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture
def held(db: Database, subscribed: int, settings: Settings, tmp_path: Path) -> Held:
    """A subscribed onboarding (it holds a business token) with messages of every source,
    edits and revokes, two stored media (one shared by two messages), one stored media whose
    file is gone, contacts (one removed), a follow-up with its notification and an alert."""
    settings.media_dir = tmp_path / "media"
    for content in (PHOTO, VOICE):
        store_for(settings).put(content)
    oid = subscribed
    with db.session() as session:
        ana = peer(session, oid, phone="16505550001", user_id="US.1001", username="ana", name="Ana")
        bo = peer(session, oid, user_id="US.1002", name="Bo")  # known by BSUID only
        message(session, oid, ana, "w.history", 1)
        message(
            session,
            oid,
            ana,
            "w.echo",
            2,
            source="app_echo",
            direction="outbound",
            edited_at=T0,
            text_body="edited text",
        )
        message(
            session,
            oid,
            bo,
            "w.api",
            3,
            source="api",
            direction="outbound",
            status="failed",
            status_error_code=131047,
            status_error_title="Re-engagement message",
        )
        message(session, oid, bo, "w.live", 4, source="live", revoked_at=T0, raw={"x": 1})
        for n, (who, content) in enumerate([(ana, PHOTO), (bo, PHOTO), (bo, VOICE)]):
            message(
                session,
                oid,
                who,
                f"w.media{n}",
                5 + n,
                type="image",
                text_body=None,
                media_state="stored",
                media_mime="image/jpeg",
                media_sha256=sha(content),
                media_size=len(content),
            )
        message(
            session,
            oid,
            ana,
            "w.gone",
            9,
            type="document",
            text_body=None,
            media_state="stored",
            media_sha256=MISSING,
        )
        contact(session, oid, ana, phone="16505550001", full_name="Ana Example")
        contact(session, oid, bo, full_name="Bo", removed_at=T0)
        follow_up = FollowUp(
            onboarding_id=oid,
            kind="companion_relink",
            series=0,
            step=0,
            due_at=T0,
            status="sent",
            attempts=1,
            sent_count=1,
            content={"reason": "onboarding"},
            created_at=T0,
        )
        session.add(follow_up)
        session.flush()
        session.add(
            Notification(
                follow_up_id=follow_up.id, channel="log", status="sent", created_at=T0, sent_at=T0
            )
        )
        session.add(Alert(onboarding_id=oid, kind="history_stalled", message="m", raised_at=T0))
    return Held(oid, messages=8, contacts=2, peers=2, media={sha(PHOTO): PHOTO, sha(VOICE): VOICE})


def archive_of(db: Database, settings: Settings, onboarding_id: int) -> zipfile.ZipFile:
    with db.sessionmaker() as session:
        data = b"".join(export_archive(session, onboarding_id, store=store_for(settings)))
    return zipfile.ZipFile(io.BytesIO(data))


def read(archive: zipfile.ZipFile, name: str, onboarding_id: int) -> bytes:
    return archive.read(f"coexist-onboarding-{onboarding_id}/{name}")


def lines(archive: zipfile.ZipFile, name: str, onboarding_id: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read(archive, name, onboarding_id).splitlines()]


def test_every_message_contact_peer_and_media_file_is_counted_back(
    db: Database, settings: Settings, held: Held
) -> None:
    """The archive's files hold every row once, and the manifest's counts say the same."""
    oid = held.onboarding_id
    archive = archive_of(db, settings, oid)
    messages = lines(archive, "messages.jsonl", oid)
    assert len(messages) == len({m["wamid"] for m in messages}) == held.messages
    assert len(lines(archive, "contacts.jsonl", oid)) == held.contacts
    assert len(lines(archive, "peers.jsonl", oid)) == held.peers
    media = {
        name.rsplit("/", 1)[1]: archive.read(name)
        for name in archive.namelist()
        if "/media/" in name and not name.endswith("manifest.jsonl")
    }
    assert media == held.media
    counts = json.loads(read(archive, "manifest.json", oid))["counts"]
    assert counts["messages"] == held.messages
    assert counts["messages_by_source"] == {"api": 1, "app_echo": 1, "history": 5, "live": 1}
    assert (counts["contacts"], counts["contacts_removed"], counts["peers"]) == (2, 1, 2)
    assert (counts["media_files"], counts["media_missing"]) == (2, 1)
    assert counts["media_bytes"] == len(PHOTO) + len(VOICE)
    assert (counts["follow_ups"], counts["alerts"]) == (1, 1)
    assert counts["timeline"] == len(lines(archive, "timeline.jsonl", oid)) > 0


def test_the_sha256_sums_verify_every_file(db: Database, settings: Settings, held: Held) -> None:
    """``SHA256SUMS`` lists every file of the archive but itself, and each sum matches."""
    oid = held.onboarding_id
    archive = archive_of(db, settings, oid)
    sums = dict(
        reversed(line.split("  ", 1))
        for line in read(archive, "SHA256SUMS", oid).decode().splitlines()
    )
    root = f"coexist-onboarding-{oid}/"
    assert set(sums) == {n.removeprefix(root) for n in archive.namelist()} - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256(read(archive, name, oid)).hexdigest() == digest, name
    for digest in held.media:
        assert sums[f"media/{digest}"] == digest


def test_a_message_carries_its_source_direction_status_changes_and_peer(
    db: Database, settings: Settings, held: Held
) -> None:
    """Each line says where the message came from, its status and error, whether it was edited
    or revoked (a revoked one without its content), and who the peer is by every identifier."""
    oid = held.onboarding_id
    by_wamid = {m["wamid"]: m for m in lines(archive_of(db, settings, oid), "messages.jsonl", oid)}
    echo, api, live = by_wamid["w.echo"], by_wamid["w.api"], by_wamid["w.live"]
    assert (echo["source"], echo["direction"], echo["edited"], echo["text"]) == (
        "app_echo",
        "outbound",
        True,
        "edited text",
    )
    assert echo["peer"] == {
        "id": echo["peer"]["id"],
        "user_id": "US.1001",
        "phone": "16505550001",
        "parent_user_id": None,
        "username": "ana",
        "name": "Ana",
    }
    assert api["status"] == "failed"
    assert api["status_error"] == {"code": 131047, "title": "Re-engagement message"}
    assert (api["peer"]["user_id"], api["peer"]["phone"]) == ("US.1002", None)
    assert (live["revoked"], live["text"], live["raw"]) == (True, None, None)
    assert by_wamid["w.media0"]["media"]["file"] == f"media/{sha(PHOTO)}"


def test_a_media_file_missing_from_the_store_is_listed_as_missing(
    db: Database, settings: Settings, held: Held
) -> None:
    """Stored media whose file is gone is in the media manifest as missing, with no file."""
    oid = held.onboarding_id
    manifest = lines(archive_of(db, settings, oid), "media/manifest.jsonl", oid)
    by_sha = {line["sha256"]: line for line in manifest}
    assert by_sha[MISSING] == {
        "sha256": MISSING,
        "content_type": "application/octet-stream",
        "messages": 1,
        "file": None,
        "size": None,
        "missing": True,
    }
    assert by_sha[sha(PHOTO)]["messages"] == 2
    assert by_sha[sha(PHOTO)]["file"] == f"media/{sha(PHOTO)}"


def test_no_secret_is_in_the_archive(
    db: Database, settings: Settings, cipher: TokenCipher, held: Held
) -> None:
    """Neither the business token (encrypted or clear), nor the app secret, is in any file."""
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, held.onboarding_id)
        assert onboarding.token_ciphertext is not None
        secrets = [
            onboarding.token_ciphertext,
            cipher.decrypt(onboarding.token_ciphertext).encode(),
            APP_SECRET.encode(),
            ADMIN_TOKEN.encode(),
        ]
    archive = archive_of(db, settings, held.onboarding_id)
    for name in archive.namelist():
        content = archive.read(name)
        assert not [s for s in secrets if s in content], name


def test_an_unknown_onboarding_is_refused_before_any_byte(db: Database, settings: Settings) -> None:
    """Asking for an onboarding that does not exist raises at once, naming it."""
    with (
        db.sessionmaker() as session,
        pytest.raises(OnboardingNotFoundError, match="no onboarding 999"),
    ):
        export_archive(session, 999, store=store_for(settings))


def test_the_archive_comes_in_chunks_as_it_is_written(
    db: Database, settings: Settings, held: Held
) -> None:
    """A larger onboarding's archive is handed out in several chunks, none much above the
    chunk size."""
    with db.session() as session:
        for n in range(3000):
            text = "".join(sha(f"{n}.{k}".encode()) for k in range(8))  # compresses little
            message(session, held.onboarding_id, None, f"w.bulk{n}", 100 + n, text_body=text)
    with db.sessionmaker() as session:
        sizes = [
            len(c) for c in export_archive(session, held.onboarding_id, store=store_for(settings))
        ]
    assert len(sizes) >= 3
    assert max(sizes) < 2 * CHUNK_BYTES


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def test_the_admin_api_streams_the_archive(
    client: TestClient, db: Database, settings: Settings, held: Held
) -> None:
    """``GET /v1/admin/onboardings/{id}/export`` answers the zip, as an attachment."""
    oid = held.onboarding_id
    answer = client.get(f"/v1/admin/onboardings/{oid}/export", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="coexist-onboarding-{oid}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert len(lines(archive, "messages.jsonl", oid)) == held.messages


def test_the_admin_api_answers_404_for_an_unknown_onboarding(
    client: TestClient, held: Held
) -> None:
    """An unknown id is a ``404`` problem, not an empty archive."""
    answer = client.get("/v1/admin/onboardings/999/export", headers=ADMIN)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == "not_found"
    assert answer.json()["detail"] == "no onboarding 999"


def test_the_cli_writes_the_archive_and_prints_its_counts(
    rt: Runtime, held: Held, tmp_path: Path
) -> None:
    """``coexist data export ID --out FILE --json`` writes the zip and prints what it holds."""
    out = tmp_path / "export.zip"
    result = CliRunner().invoke(
        cli, ["data", "export", str(held.onboarding_id), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["bytes"] == out.stat().st_size
    assert printed["counts"]["messages"] == held.messages
    assert zipfile.ZipFile(out).testzip() is None


def test_the_cli_refuses_an_unknown_onboarding_and_writes_nothing(
    rt: Runtime, tmp_path: Path
) -> None:
    """An unknown id exits 1 with the reason, and no file (not even a partial one) is left."""
    out = tmp_path / "exports"
    out.mkdir()
    result = CliRunner().invoke(cli, ["data", "export", "999", "--out", str(out / "x.zip")])
    assert result.exit_code == 1
    assert "no onboarding 999" in result.output
    assert list(out.iterdir()) == []
