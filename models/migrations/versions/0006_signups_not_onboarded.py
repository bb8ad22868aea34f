"""signups not onboarded: recorded finishes, idempotent abandoned signups

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:25:17.566848

Existing abandoned signups keep ``body_sha256`` empty: their bodies were not kept whole (the
code never is), so no digest can be rebuilt, and an empty digest means what it did before:
one row per post.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.base import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "recorded_finishes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("waba_id", sa.String(length=32), nullable=True),
        sa.Column("phone_number_id", sa.String(length=32), nullable=True),
        sa.Column("business_id", sa.String(length=32), nullable=True),
        sa.Column("asset_ids", JSON, nullable=False),
        sa.Column("session_data", JSON, nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recorded_finishes")),
        sa.UniqueConstraint("body_sha256", name=op.f("uq_recorded_finishes_body_sha256")),
    )
    with op.batch_alter_table("recorded_finishes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recorded_finishes_waba_id"), ["waba_id"], unique=False)

    with op.batch_alter_table("abandoned_signups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_abandoned_signups_body_sha256"), ["body_sha256"]
        )


def downgrade() -> None:
    with op.batch_alter_table("abandoned_signups", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_abandoned_signups_body_sha256"), type_="unique")
        batch_op.drop_column("body_sha256")

    with op.batch_alter_table("recorded_finishes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recorded_finishes_waba_id"))

    op.drop_table("recorded_finishes")
