"""Federated sign-in: upstream providers and identities linked by (issuer, subject) (issue 17)

Revision ID: 0010_federation_identities
Revises: 7d789cf1672f (the users table)
"""
import sqlalchemy as sa
from alembic import op

from authsvc.models.base import UTCDateTime

revision = "0010_federation_identities"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_providers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=32), nullable=False, unique=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False, unique=True),
        sa.Column("discovery_url", sa.String(length=512), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("scopes", sa.String(length=255), nullable=False),
        sa.Column("trust_mfa", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "federated_identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("federation_providers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("issuer", "subject", name="uq_federated_identity"),
    )
    op.create_index("ix_federated_identities_user_id", "federated_identities", ["user_id"])
    op.create_index("ix_federated_identities_provider_id", "federated_identities", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_federated_identities_provider_id", table_name="federated_identities")
    op.drop_index("ix_federated_identities_user_id", table_name="federated_identities")
    op.drop_table("federated_identities")
    op.drop_table("federation_providers")
