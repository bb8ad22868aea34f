"""The data export on PostgreSQL: server-side cursors, every row counted back, sums verified."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from models import (
    Contact,
    Database,
    FollowUp,
    Message,
    Notification,
    Onboarding,
    Peer,
    SyncRequest,
    SyncType,
    utcnow,
)
from onboarding.media_store import LocalMediaStore
from onboarding.rights import export

pytestmark = pytest.mark.integration

MESSAGES = 5_000
"""More than two fetches of the server-side cursor."""
PHOTO = b"\xff\xd8\xff\xe0 a photo"


@pytest.fixture
def onboarding_id(db: Database, tmp_path: Path) -> Iterator[int]:
    """A synced onboarding with messages over two peers, one stored media, a contact and two
    follow-ups with notifications; deleted afterwards."""
    digest = LocalMediaStore(tmp_path).put(PHOTO)
    now = utcnow()
    with db.session() as session:
        onboarding = Onboarding(
            code_sha256=secrets.token_hex(32),
            signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            session_data={},
            waba_id="102290129340398",
            phone_number_id="106540352242922",
            signup_completed_at=now,
            sync_deadline_at=now,
            state="synced",
            state_changed_at=now,
            token_ciphertext=b"not exported",
        )
        session.add(onboarding)
        session.flush()
        oid = onboarding.id
        for sync_type in SyncType:
            session.add(SyncRequest(onboarding_id=oid, sync_type=sync_type.value))
        peers = [Peer(onboarding_id=oid, user_id=f"US.{n}", name=f"P{n}") for n in range(2)]
        session.add_all(peers)
        session.flush()
        session.add_all(
            Message(
                onboarding_id=oid,
                wamid=f"wamid.{n}",
                thread="x",
                peer_id=peers[n % 2].id,
                direction="inbound" if n % 3 else "outbound",
                source="history",
                sent_at=now,
                type="image" if n == 0 else "text",
                text_body=f"message {n}",
                media_state="stored" if n == 0 else "none",
                media_sha256=digest if n == 0 else None,
                media_attempts=0,
            )
            for n in range(MESSAGES)
        )
        session.add(Contact(onboarding_id=oid, peer_id=peers[0].id, changed_at=now))
        for step in range(2):
            follow_up = FollowUp(
                onboarding_id=oid,
                kind="app_open",
                series=0,
                step=step,
                due_at=now,
                status="sent",
                attempts=1,
                sent_count=1,
                content={},
                created_at=now,
            )
            session.add(follow_up)
            session.flush()
            session.add(
                Notification(
                    follow_up_id=follow_up.id, channel="log", status="sent", created_at=now
                )
            )
    yield oid
    with db.session() as session:
        session.execute(delete(Contact).where(Contact.onboarding_id == oid))
        session.execute(delete(Onboarding).where(Onboarding.id == oid))


def test_an_export_on_postgresql_counts_every_row_back(
    db: Database, onboarding_id: int, tmp_path: Path
) -> None:
    """Read through server-side cursors (with follow-ups' notifications read meanwhile), the
    archive holds every message, contact and follow-up, and its sums verify."""
    with db.sessionmaker() as session:
        data = b"".join(
            export.export_archive(session, onboarding_id, store=LocalMediaStore(tmp_path))
        )
    archive = zipfile.ZipFile(io.BytesIO(data))
    root = f"coexist-onboarding-{onboarding_id}/"
    messages = archive.read(root + "messages.jsonl").splitlines()
    assert len({json.loads(m)["wamid"] for m in messages}) == MESSAGES
    follow_ups = [json.loads(f) for f in archive.read(root + "follow_ups.jsonl").splitlines()]
    assert [len(f["notifications"]) for f in follow_ups] == [1, 1]
    counts = json.loads(archive.read(root + "manifest.json"))["counts"]
    assert (counts["messages"], counts["contacts"], counts["peers"]) == (MESSAGES, 1, 2)
    assert (counts["media_files"], counts["media_missing"]) == (1, 0)
    for line in archive.read(root + "SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(archive.read(root + name)).hexdigest() == digest
    assert not [n for n in archive.namelist() if b"not exported" in archive.read(n)]
