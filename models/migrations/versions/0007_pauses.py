"""what paused an onboarding's sends, and its account restrictions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:55:00.000000

``paused_reason`` kept every pause, restrictions included; ``paused_by`` now names the event
that set it, so the event's counterpart (``DISABLED_UPDATE`` ``REINSTATE``, a newer
``ACCOUNT_RESTRICTION``) can lift it. Existing pauses get it from their reason's prefix
(``"DISABLED_UPDATE: ..."``); restrictions start empty and fill from the next event.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_by", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "restrictions",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    onboardings = sa.table(
        "onboardings",
        sa.column("id", sa.BigInteger()),
        sa.column("paused_reason", sa.Text()),
        sa.column("paused_by", sa.String(64)),
    )
    bind = op.get_bind()
    paused = bind.execute(
        sa.select(onboardings.c.id, onboardings.c.paused_reason).where(
            onboardings.c.paused_reason.is_not(None)
        )
    ).all()
    for row_id, reason in paused:
        event = reason.split(":", 1)[0].strip()[:64] or "UNKNOWN"
        bind.execute(
            sa.update(onboardings).where(onboardings.c.id == row_id).values(paused_by=event)
        )


def downgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.drop_column("restrictions")
        batch_op.drop_column("paused_by")
