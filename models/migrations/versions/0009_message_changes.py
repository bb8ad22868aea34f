"""edits and revokes kept until their message arrives; reasons for media too old to fetch

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: What a message's ``media_error`` says when its media is older than the media cut-off.
TOO_OLD = "sent before the media cut-off: Meta sends no media for it"


def upgrade() -> None:
    op.create_table(
        "message_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("wamid", sa.String(length=191), nullable=False),
        sa.Column("original_wamid", sa.String(length=191), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_message_changes_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_changes")),
        sa.UniqueConstraint(
            "onboarding_id", "wamid", name=op.f("uq_message_changes_onboarding_id_wamid")
        ),
    )
    with op.batch_alter_table("message_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_changes_original", ["onboarding_id", "original_wamid"], unique=False
        )
    # Media skipped as too old now says why; rows skipped before say it too.
    op.execute(
        sa.text(
            "UPDATE messages SET media_error = :reason "
            "WHERE media_state = 'skipped_too_old' AND media_error IS NULL"
        ).bindparams(reason=TOO_OLD)
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE messages SET media_error = NULL "
            "WHERE media_state = 'skipped_too_old' AND media_error = :reason"
        ).bindparams(reason=TOO_OLD)
    )
    with op.batch_alter_table("message_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_message_changes_original")

    op.drop_table("message_changes")
