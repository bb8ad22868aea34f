"""Migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from models import Base, Contact, Database, Message, Peer
from models.crypto import TokenCipher
from onboarding.signup.intake import SignupBody, accept_signup
from tests.conftest import TOKEN_KEY, make_settings


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
    """An onboarding, as a finished Embedded Signup creates it."""
    body = SignupBody.model_validate(
        {
            "code": "AQcode",
            "session": {
                "type": "WA_EMBEDDED_SIGNUP",
                "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                "data": {"waba_id": "102290129340398"},
            },
        }
    )
    outcome = accept_signup(session, body, settings=make_settings(), cipher=TokenCipher(TOKEN_KEY))
    return outcome.onboarding_id
