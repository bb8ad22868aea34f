"""onboarding lifecycle from account_update

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:56:27.591501
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lifecycle_event", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lifecycle_event_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lifecycle_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("lifecycle_initiated_by", sa.String(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("lifecycle_since", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("resume_state", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("paused_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.drop_column("paused_at")
        batch_op.drop_column("paused_reason")
        batch_op.drop_column("resume_state")
        batch_op.drop_column("lifecycle_since")
        batch_op.drop_column("lifecycle_initiated_by")
        batch_op.drop_column("lifecycle_reason")
        batch_op.drop_column("lifecycle_event_at")
        batch_op.drop_column("lifecycle_event")
