"""Migrations build exactly the schema the models describe."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.orm import Session

from models import Base, Contact, Database, Message, Peer
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    """`coexist db upgrade` on an empty SQLite database leaves no difference with the models."""
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    assert db.current_revision() is not None
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    db.upgrade()  # idempotent
    db.dispose()


def test_peers_migration_gives_every_thread_and_contact_a_peer(tmp_path: Path) -> None:
    """Upgrading a database with messages and contacts creates one peer per number of an
    onboarding and fills ``peer_id`` on messages and contacts from it."""
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.upgrade("0004")
    with db.session() as session:
        onboarding_id = signed_up(session)
        now = "2026-11-30 10:00:00"
        for wamid, thread in (("w.1", "16505550000"), ("w.2", "16505550000"), ("w.3", "")):
            session.execute(
                text(
                    "INSERT INTO messages (onboarding_id, wamid, thread, direction, source, "
                    "sent_at, type, media_state, media_attempts) VALUES "
                    "(:o, :w, :t, 'inbound', 'history', :now, 'text', 'none', 0)"
                ),
                {"o": onboarding_id, "w": wamid, "t": thread, "now": now},
            )
        for number in ("16505550000", "447700900123"):
            session.execute(
                text(
                    "INSERT INTO contacts (onboarding_id, phone, changed_at) VALUES (:o, :p, :now)"
                ),
                {"o": onboarding_id, "p": number, "now": now},
            )
    db.upgrade()
    with db.sessionmaker() as session:
        peers = {p.phone: p.id for p in session.scalars(select(Peer))}
        assert set(peers) == {"16505550000", "447700900123"}
        threads = {m.wamid: m.peer_id for m in session.scalars(select(Message))}
        assert threads == {"w.1": peers["16505550000"], "w.2": peers["16505550000"], "w.3": None}
        assert {c.phone: c.peer_id for c in session.scalars(select(Contact))} == peers
    db.dispose()


def signed_up(session: Session) -> int:
    """An onboarding row as revision 0004 holds it (the models have moved on since)."""
    onboardings = Table("onboardings", MetaData(), autoload_with=session.connection())
    now = datetime(2026, 11, 30, tzinfo=UTC)
    inserted = session.execute(
        insert(onboardings).values(
            code_sha256="0" * 64,
            signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            session_data={},
            waba_id="102290129340398",
            signup_completed_at=now,
            sync_deadline_at=now,
            state="synced",
            state_changed_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return int(inserted.inserted_primary_key[0])


def test_pauses_revision_names_the_event_behind_each_existing_pause(tmp_path: Path) -> None:
    """Upgrading to 0007 fills ``paused_by`` from each stored pause's reason ("EVENT: ...") and
    leaves unpaused onboardings alone."""
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade("0004")
    onboardings = Table("onboardings", MetaData(), autoload_with=db.engine)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    required = {
        "code_sha256": None,
        "signup_event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "session_data": {},
        "waba_id": "102290129340398",
        "signup_completed_at": now,
        "sync_deadline_at": now,
        "state": "synced",
        "state_changed_at": now,
        "created_at": now,
        "updated_at": now,
    }
    reasons = ["DISABLED_UPDATE: no details", "ACCOUNT_RESTRICTION: no details", None]
    with db.engine.begin() as conn:
        for n, reason in enumerate(reasons):
            conn.execute(
                insert(onboardings).values(
                    {**required, "code_sha256": f"{n:064d}", "paused_reason": reason}
                )
            )
    db.upgrade()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT paused_by FROM onboardings ORDER BY id")).all()
    assert [r.paused_by for r in rows] == ["DISABLED_UPDATE", "ACCOUNT_RESTRICTION", None]
    db.dispose()


def test_media_skipped_as_too_old_before_0009_gets_its_reason(tmp_path: Path) -> None:
    """Messages already skipped_too_old when 0009 runs are given the reason new ones carry."""
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade("0004")
    columns = "onboarding_id, wamid, thread, direction, source, sent_at, type, media_state"
    with db.engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys = OFF"))
        for wamid, state in (("wamid.OLD", "skipped_too_old"), ("wamid.NEW", "awaiting_media")):
            conn.execute(
                text(
                    f"INSERT INTO messages ({columns}, media_attempts) VALUES "  # noqa: S608
                    "(1, :wamid, '1', 'inbound', 'history', '2026-01-01', "
                    "'media_placeholder', :state, 0)"
                ),
                {"wamid": wamid, "state": state},
            )
    db.upgrade()
    with db.engine.connect() as conn:
        reasons = dict(conn.execute(text("SELECT wamid, media_error FROM messages")).all())
    assert reasons == {"wamid.OLD": TOO_OLD_FOR_MEDIA, "wamid.NEW": None}
    db.dispose()


def test_stored_media_before_0012_is_keyed_by_its_file_name(tmp_path: Path) -> None:
    """0012 sets media_sha256 of stored media to the hex digest its file is named by (Meta's
    may have been base64) and leaves media not stored alone."""
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade("0011")
    digest = "ab" * 32
    columns = "onboarding_id, wamid, thread, direction, source, sent_at, type, media_state"
    rows = (
        (
            "wamid.S",
            "stored",
            "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
            f"var/media/ab/{digest}",
        ),
        ("wamid.A", "awaiting_media", "q83vEjRW", None),
    )
    with db.engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys = OFF"))
        for wamid, state, sha, path in rows:
            conn.execute(
                text(
                    f"INSERT INTO messages ({columns}, media_sha256, media_path, media_attempts)"  # noqa: S608
                    " VALUES (1, :wamid, '1', 'inbound', 'history', '2026-01-01', 'image',"
                    " :state, :sha, :path, 0)"
                ),
                {"wamid": wamid, "state": state, "sha": sha, "path": path},
            )
    db.upgrade()
    with db.engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT wamid, media_sha256 FROM messages")).all())
    assert keys == {"wamid.S": digest, "wamid.A": "q83vEjRW"}
    db.dispose()
