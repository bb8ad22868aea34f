"""Migrations build exactly the schema the models describe."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, text

from models import Base, Database
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
