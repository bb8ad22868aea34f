"""live traffic: statuses on messages (time, failure) and statuses kept until their message

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("status_error_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("status_error_title", sa.Text(), nullable=True))
    op.create_table(
        "pending_statuses",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("onboarding_id", BIG_ID, nullable=False),
        sa.Column("wamid", sa.String(length=191), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_at", UTCDateTime(), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_pending_statuses_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_statuses")),
        sa.UniqueConstraint(
            "onboarding_id",
            "wamid",
            "status",
            name=op.f("uq_pending_statuses_onboarding_id_wamid_status"),
        ),
    )
    with op.batch_alter_table("pending_statuses", schema=None) as batch_op:
        batch_op.create_index("ix_pending_statuses_received", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_statuses", schema=None) as batch_op:
        batch_op.drop_index("ix_pending_statuses_received")
    op.drop_table("pending_statuses")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("status_error_title")
        batch_op.drop_column("status_error_code")
        batch_op.drop_column("status_at")
