"""Data erasure on PostgreSQL: after erasing one onboarding, a scan of every table and of the
media store finds nothing of it, and everything of the others is still there; a crash midway
and a rerun end as an uninterrupted erasure does.

The onboardings are built through the real paths: the signup, then deliveries stored in the
inbox and processed by dispatch (history, contacts, live messages, edits, statuses). Two steps
are stood in for: the onboarding is put in ``synced`` as the exchange and syncs leave it, and the
media download puts the bytes in the store and marks the rows stored, as the downloader does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import LargeBinary, Text, cast, func, select, update
from sqlalchemy.orm import Session

from config import Settings
from models import (
    Base,
    Database,
    Erasure,
    FollowUp,
    Message,
    Notification,
    Onboarding,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.media_store import LocalMediaStore
from onboarding.rights import erase
from onboarding.sandbox import Sandbox
from tests.conftest import make_settings
from tests.onboarding.deliveries import Business, body_of, chunk, contacts, edit, text
from tests.onboarding.helpers import signup
from tests.onboarding.ingest.live_payloads import incoming, live_image, live_text, status, statuses

pytestmark = pytest.mark.integration

SHARED = b"\xff\xd8\xff\xe0 a photo every business received"


@dataclass(frozen=True)
class Built:
    """One onboarding built for the test, and the personal data it holds."""

    onboarding_id: int
    #: Strings that must not survive its erasure: texts, numbers, BSUID-free names, edits.
    markers: tuple[str, ...]
    #: Bytes of its media file no other onboarding holds.
    own_media: bytes


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return make_settings(
        database_url=db.url,
        media_dir=tmp_path / "media",
        erase_batch_size=3,
        erase_batches_per_run=1000,
    )


@pytest.fixture
def store(settings: Settings) -> LocalMediaStore:
    return LocalMediaStore(settings.media_dir)


def deliver(session: Session, settings: Settings, payload: dict[str, Any]) -> None:
    """Store one delivery in the inbox and process it, as the receiver and the worker do."""
    delivery_id = receive(session, body_of(payload)).delivery_id
    process_delivery(session, delivery_id, settings=settings)


def build(
    session: Session,
    sandbox: Sandbox,
    settings: Settings,
    store: LocalMediaStore,
    tag: str,
) -> Built:
    """A signed-up onboarding with history, contacts, live messages, an edit, a status, two
    media files (one shared with every other onboarding), a follow-up and inbox rows."""
    onboarding = signup(
        session,
        sandbox,
        settings,
        TokenCipher(settings.token_keys.get_secret_value()),
        include_phone_number_id=True,
    )
    assert onboarding.phone_number_id is not None
    onboarding.state = "synced"  # as the exchange, subscription and syncs leave it
    session.commit()
    business = Business(
        onboarding.id,
        onboarding.waba_id,
        onboarding.phone_number_id,
        "".join(c for c in (onboarding.display_phone_number or "") if c.isdigit()) or "1650555",
    )
    user = f"4477009{tag}"
    name = f"Customer {tag}"
    now = int(utcnow().timestamp())
    history_text = f"history words of {tag}"
    live_words = f"live words of {tag}"
    edited_words = f"edited words of {tag}"
    deliver(
        session,
        settings,
        chunk(business, 0, 0, 100, {user: [text(f"wamid.H{tag}", user, now - 600, history_text)]}),
    )
    deliver(session, settings, contacts(business, ("add", user, now - 500, name)))
    contact = {"profile": {"name": name}, "wa_id": user}
    deliver(
        session,
        settings,
        incoming(
            business,
            {**live_text(f"wamid.L{tag}", now - 60, live_words), "from": user},
            {**live_image(f"wamid.I{tag}", now - 50, f"caption of {tag}"), "from": user},
            {**live_image(f"wamid.J{tag}", now - 40, f"second caption of {tag}"), "from": user},
            contacts=[contact],
        ),
    )
    deliver(
        session,
        settings,
        incoming(
            business,
            edit(f"wamid.E{tag}", user, now - 30, f"wamid.L{tag}", edited_words),
            contacts=[contact],
        ),
    )
    deliver(
        session, settings, statuses(business, status(f"wamid.H{tag}", "read", now, recipient=user))
    )
    own = f"\xff\xd8 the photo only {tag} has".encode()
    for wamid, content in ((f"wamid.I{tag}", own), (f"wamid.J{tag}", SHARED)):
        digest = store.put(content)
        session.execute(
            update(Message)
            .where(Message.onboarding_id == onboarding.id, Message.wamid == wamid)
            .values(media_state="stored", media_sha256=digest, media_size=len(content))
        )
    follow_up = FollowUp(
        onboarding_id=onboarding.id,
        kind="app_open",
        series=0,
        step=0,
        due_at=utcnow(),
        status="sent",
        attempts=1,
        sent_count=1,
        content={"name": name},
        created_at=utcnow(),
    )
    session.add(follow_up)
    session.flush()
    session.add(
        Notification(follow_up_id=follow_up.id, channel="log", status="sent", created_at=utcnow())
    )
    session.commit()
    stored = session.scalar(
        select(func.count()).select_from(Message).where(Message.onboarding_id == onboarding.id)
    )
    assert stored == 4, "history, live text and two images"
    return Built(
        onboarding.id,
        (history_text, live_words, edited_words, user, name, f"caption of {tag}"),
        own,
    )


def scan(db: Database) -> Iterator[tuple[str, str, bytes]]:
    """Every value of every column of every table, as bytes: (table, column, value). Bytes
    columns as stored, the rest as PostgreSQL writes them as text (JSON included)."""
    with db.sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                binary = isinstance(column.type, LargeBinary)
                query = select(column if binary else cast(column, Text)).where(column.is_not(None))
                for (value,) in session.execute(query):
                    yield table.name, column.name, bytes(value) if binary else value.encode()


def found(db: Database, store: LocalMediaStore, built: Built) -> list[str]:
    """Where any of ``built``'s personal data still is."""
    needles = [m.encode() for m in built.markers]
    where = [
        f"{table}.{column}"
        for table, column, raw in scan(db)
        if any(n in raw for n in needles) or built.own_media in raw
    ]
    where += [
        str(path)
        for path in Path(store.root).rglob("*")
        if path.is_file() and path.read_bytes() == built.own_media
    ]
    return where


def held_by(db: Database, onboarding_id: int) -> dict[str, int]:
    """How many rows of each table belong to the onboarding (notifications by follow-up)."""
    counts: dict[str, int] = {}
    with db.sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            if "onboarding_id" in table.columns:
                counts[table.name] = int(
                    session.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(table.c.onboarding_id == onboarding_id)
                    )
                    or 0
                )
        counts["notifications"] = int(
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .join(FollowUp, FollowUp.id == Notification.follow_up_id)
                .where(FollowUp.onboarding_id == onboarding_id)
            )
            or 0
        )
    return counts


def erase_all(
    db: Database, settings: Settings, store: LocalMediaStore, onboarding_id: int
) -> Erasure:
    with db.sessionmaker() as session:
        erase.request_erasure(session, onboarding_id, reason="the business asked")
        for _ in range(1000):
            erasure = erase.advance(session, onboarding_id, store=store, settings=settings)
            assert erasure is not None
            if erasure.state == "done":
                session.expunge(erasure)
                return erasure
    raise AssertionError("the erasure did not finish")


def test_nothing_of_the_erased_onboarding_is_left_and_the_other_keeps_everything(
    db: Database, sandbox: Sandbox, settings: Settings, store: LocalMediaStore
) -> None:
    """A scan of every table and of the media store finds none of the erased onboarding's texts,
    numbers, names or media bytes; the other onboarding's rows are all there and the file both
    held still reads back."""
    with db.sessionmaker() as session:
        gone = build(session, sandbox, settings, store, "0101")
        kept = build(session, sandbox, settings, store, "0202")
    assert found(db, store, gone), "the scan finds the data before the erasure"
    before = held_by(db, kept.onboarding_id)
    erasure = erase_all(db, settings, store, gone.onboarding_id)
    assert found(db, store, gone) == []
    assert held_by(db, kept.onboarding_id) == before
    assert found(db, store, kept) != []
    stored = store.open(hashlib.sha256(SHARED).hexdigest())
    assert stored is not None
    assert b"".join(stored.chunks()) == SHARED
    assert (erasure.counts["media_objects"], erasure.counts["media_shared"]) == (1, 1)
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, gone.onboarding_id)
        assert onboarding.erased_at is not None
        assert onboarding.token_ciphertext is None


def test_a_crash_midway_and_a_rerun_end_as_an_uninterrupted_erasure(
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    store: LocalMediaStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two onboardings built alike, one erased straight through and one whose erasure fails
    after a few batches and is run again, end with the same record and nothing left."""
    with db.sessionmaker() as session:
        straight = build(session, sandbox, settings, store, "0303")
        crashed = build(session, sandbox, settings, store, "0404")
        other = build(session, sandbox, settings, store, "0505")
    before = held_by(db, other.onboarding_id)
    done = erase_all(db, settings, store, straight.onboarding_id)

    real = erase._apply
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("the worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(erase, "_apply", failing)
    with db.sessionmaker() as session:
        erase.request_erasure(session, crashed.onboarding_id, reason="the business asked")
        with pytest.raises(RuntimeError):
            erase.advance(session, crashed.onboarding_id, store=store, settings=settings)
    monkeypatch.setattr(erase, "_apply", real)
    with db.sessionmaker() as session:
        midway = session.scalars(
            select(Erasure).where(Erasure.onboarding_id == crashed.onboarding_id)
        ).one()
        assert midway.state == "running"
    rerun = erase_all(db, settings, store, crashed.onboarding_id)

    assert rerun.counts == done.counts
    assert (rerun.state, rerun.step) == (done.state, done.step) == ("done", "done")
    assert held_by(db, crashed.onboarding_id) == held_by(db, straight.onboarding_id)
    assert found(db, store, crashed) == found(db, store, straight) == []
    assert held_by(db, other.onboarding_id) == before
    assert store.exists(hashlib.sha256(SHARED).hexdigest())
