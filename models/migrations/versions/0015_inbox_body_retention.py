"""inbox retention: a processed row's raw body may be dropped (``body_dropped_at``), found by a
partial index of the processed rows that still hold their body

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_KEPT = "status = 'processed' AND body_dropped_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_dropped_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_inbox_body_kept",
        "inbox",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text(_KEPT),
        sqlite_where=sa.text(_KEPT),
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_body_kept", table_name="inbox")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("body_dropped_at")
