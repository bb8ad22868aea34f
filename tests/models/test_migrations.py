"""Migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from models import Base, Database


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
