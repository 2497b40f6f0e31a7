"""DEP-1 (issue 15): order systems with their API tokens and keys, request batches and their devices.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_systems",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_order_systems_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_systems")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_order_systems_account_id")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_order_systems_token_digest")),
    )
    op.create_index(op.f("ix_order_systems_account_id"), "order_systems", ["account_id"])
    op.create_table(
        "order_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_system_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("customer_account", sa.String(length=8), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("submitted_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_system_id"],
            ["order_systems.id"],
            name=op.f("fk_order_batches_order_system_id_order_systems"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_order_batches_job_id_jobs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_batches")),
        sa.UniqueConstraint("order_system_id", "batch_id", name=op.f("uq_order_batches_order_system_id")),
    )
    op.create_index(op.f("ix_order_batches_order_system_id"), "order_batches", ["order_system_id"])
    op.create_index(op.f("ix_order_batches_job_id"), "order_batches", ["job_id"])
    op.create_table(
        "order_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_pk", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("request_type", sa.String(length=2), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_pk"], ["order_batches.id"], name=op.f("fk_order_devices_batch_pk_order_batches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_devices")),
        sa.UniqueConstraint("batch_pk", "position", name=op.f("uq_order_devices_batch_pk")),
    )


def downgrade() -> None:
    op.drop_table("order_devices")
    op.drop_index(op.f("ix_order_batches_job_id"), table_name="order_batches")
    op.drop_index(op.f("ix_order_batches_order_system_id"), table_name="order_batches")
    op.drop_table("order_batches")
    op.drop_index(op.f("ix_order_systems_account_id"), table_name="order_systems")
    op.drop_table("order_systems")
