"""FF-1 (issue 15): slots, direct additions and the billing record.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ff_slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=8), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("filled_at", server.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("filled_mac", sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ff_slots_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_ff_slots_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ff_slots")),
    )
    op.create_index(op.f("ix_ff_slots_account_id"), "ff_slots", ["account_id"])
    op.create_index(op.f("ix_ff_slots_site_id"), "ff_slots", ["site_id"])
    op.create_index(op.f("ix_ff_slots_mac"), "ff_slots", ["mac"])
    op.create_index(op.f("ix_ff_slots_serial"), "ff_slots", ["serial"])
    op.create_table(
        "ff_direct_devices",
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.String(length=254), nullable=False),
        sa.Column("added_via", sa.String(length=16), nullable=False),
        sa.Column("added_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mac"], ["devices.mac"], name=op.f("fk_ff_direct_devices_mac_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mac", name=op.f("pk_ff_direct_devices")),
    )
    op.create_table(
        "billing_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=8), nullable=False),
        sa.Column("account_path", sa.String(length=400), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("added_by", sa.String(length=254), nullable=False),
        sa.Column("added_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_ledger")),
    )
    op.create_index(op.f("ix_billing_ledger_account_path"), "billing_ledger", ["account_path"])
    op.create_index("ix_billing_ledger_account_month", "billing_ledger", ["account_id", "month"])


def downgrade() -> None:
    op.drop_index("ix_billing_ledger_account_month", table_name="billing_ledger")
    op.drop_index(op.f("ix_billing_ledger_account_path"), table_name="billing_ledger")
    op.drop_table("billing_ledger")
    op.drop_table("ff_direct_devices")
    op.drop_index(op.f("ix_ff_slots_serial"), table_name="ff_slots")
    op.drop_index(op.f("ix_ff_slots_mac"), table_name="ff_slots")
    op.drop_index(op.f("ix_ff_slots_site_id"), table_name="ff_slots")
    op.drop_index(op.f("ix_ff_slots_account_id"), table_name="ff_slots")
    op.drop_table("ff_slots")
