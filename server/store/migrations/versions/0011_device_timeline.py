"""Issue 16 (S15) device status report-back: each device's enrollment events (`device_events`,
the timeline and the fleet status cursor) and when EST last issued it an identity certificate.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("identity_issued_at", server.store.models.UtcDateTime(timezone=True), nullable=True))
    op.create_table(
        "device_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("login", sa.String(length=254), nullable=True),
        sa.Column("account_id", sa.String(length=8), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["mac"], ["devices.mac"], name=op.f("fk_device_events_mac_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_events")),
    )
    op.create_index("ix_device_events_mac_id", "device_events", ["mac", "id"])


def downgrade() -> None:
    op.drop_index("ix_device_events_mac_id", table_name="device_events")
    op.drop_table("device_events")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("identity_issued_at")
