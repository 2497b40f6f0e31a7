"""PNP-1 (issue 15): pre-registration, QR batches, reprovisioning and replacement.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, server.store.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "pnp_registrations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=True),
        sa.Column("account_id", sa.String(length=8), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("registrant_id", sa.String(length=8), nullable=False),
        sa.Column("registered_by", sa.String(length=254), nullable=False),
        sa.Column("label_code_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        _when("created_at", False),
        _when("applied_at"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_pnp_registrations_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_pnp_registrations_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pnp_registrations")),
        sa.UniqueConstraint("mac", name=op.f("uq_pnp_registrations_mac")),
    )
    op.create_index(op.f("ix_pnp_registrations_account_id"), "pnp_registrations", ["account_id"])
    op.create_index(op.f("ix_pnp_registrations_site_id"), "pnp_registrations", ["site_id"])
    op.create_index(op.f("ix_pnp_registrations_status"), "pnp_registrations", ["status"])
    op.create_table(
        "qr_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("target_account_id", sa.String(length=8), nullable=True),
        sa.Column("target_site_id", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        _when("created_at", False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_qr_batches_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_batches")),
        sa.UniqueConstraint("number", name=op.f("uq_qr_batches_number")),
    )
    op.create_index(op.f("ix_qr_batches_account_id"), "qr_batches", ["account_id"])
    op.create_index(op.f("ix_qr_batches_target_account_id"), "qr_batches", ["target_account_id"])
    op.create_table(
        "qr_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch_pk", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _when("scanned_at"),
        sa.Column("scanned_by", sa.String(length=254), nullable=True),
        sa.Column("account_id", sa.String(length=8), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        _when("revoked_at"),
        sa.ForeignKeyConstraint(
            ["batch_pk"], ["qr_batches.id"], name=op.f("fk_qr_codes_batch_pk_qr_batches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qr_codes")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_qr_codes_token_hash")),
    )
    op.create_index(op.f("ix_qr_codes_batch_pk"), "qr_codes", ["batch_pk"])
    op.create_index(op.f("ix_qr_codes_mac"), "qr_codes", ["mac"])
    op.create_table(
        "pnp_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("other_mac", sa.String(length=12), nullable=True),
        sa.Column("from_account", sa.String(length=8), nullable=True),
        sa.Column("from_site", sa.Integer(), nullable=True),
        sa.Column("to_account", sa.String(length=8), nullable=True),
        sa.Column("to_site", sa.Integer(), nullable=True),
        sa.Column("by_login", sa.String(length=254), nullable=False),
        _when("at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pnp_events")),
    )
    op.create_index(op.f("ix_pnp_events_mac"), "pnp_events", ["mac"])
    op.create_index(op.f("ix_pnp_events_other_mac"), "pnp_events", ["other_mac"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pnp_events_other_mac"), table_name="pnp_events")
    op.drop_index(op.f("ix_pnp_events_mac"), table_name="pnp_events")
    op.drop_table("pnp_events")
    op.drop_index(op.f("ix_qr_codes_mac"), table_name="qr_codes")
    op.drop_index(op.f("ix_qr_codes_batch_pk"), table_name="qr_codes")
    op.drop_table("qr_codes")
    op.drop_index(op.f("ix_qr_batches_target_account_id"), table_name="qr_batches")
    op.drop_index(op.f("ix_qr_batches_account_id"), table_name="qr_batches")
    op.drop_table("qr_batches")
    op.drop_index(op.f("ix_pnp_registrations_status"), table_name="pnp_registrations")
    op.drop_index(op.f("ix_pnp_registrations_site_id"), table_name="pnp_registrations")
    op.drop_index(op.f("ix_pnp_registrations_account_id"), table_name="pnp_registrations")
    op.drop_table("pnp_registrations")
