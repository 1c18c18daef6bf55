"""MFA: TOTP, recovery codes, WebAuthn credentials, trusted devices

Revision ID: 0003_mfa
Revises: 7d789cf1672f
"""
from alembic import op
import sqlalchemy as sa
import authsvc.models.base


revision = "0003_mfa"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("key_version", sa.String(length=16), nullable=False),
        sa.Column("created_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mfa_totp_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mfa_totp")),
    )
    with op.batch_alter_table("mfa_totp", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mfa_totp_key_version"), ["key_version"], unique=False)

    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mfa_recovery_codes_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_codes")),
        sa.UniqueConstraint("user_id", "code_hash", name=op.f("uq_mfa_recovery_codes_user_id")),
    )
    with op.batch_alter_table("mfa_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mfa_recovery_codes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "mfa_webauthn",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("user_handle", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("transports", sa.String(length=128), nullable=True),
        sa.Column("aaguid", sa.String(length=36), nullable=True),
        sa.Column("created_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.Column("flagged_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mfa_webauthn_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_webauthn")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_mfa_webauthn_credential_id")),
    )
    with op.batch_alter_table("mfa_webauthn", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mfa_webauthn_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mfa_webauthn_user_handle"), ["user_handle"], unique=False)

    op.create_table(
        "mfa_trusted_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.Column("expires_at", authsvc.models.base.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", authsvc.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mfa_trusted_devices_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_trusted_devices")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mfa_trusted_devices_token_hash")),
    )
    with op.batch_alter_table("mfa_trusted_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mfa_trusted_devices_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("mfa_trusted_devices")
    op.drop_table("mfa_webauthn")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
