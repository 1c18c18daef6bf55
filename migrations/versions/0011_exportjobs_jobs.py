"""Background export jobs (issue 20): data export, audit export and full chain check run by the outbox worker

Revision ID: 0011_exportjobs_jobs
Revises: 7d789cf1672f

A new table referencing only ``users`` (created by the initial schema): a branch from it, merged by ``upgrade heads``.
"""
import sqlalchemy as sa
from alembic import op

from authsvc.models.base import UTCDateTime

revision = "0011_exportjobs_jobs"
down_revision = "7d789cf1672f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("params", sa.Text(), nullable=True),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("downloaded_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("progress", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_name", sa.String(length=128), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_export_jobs_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
        sa.UniqueConstraint("token", name=op.f("uq_export_jobs_token")),
        sa.UniqueConstraint("active_key", name=op.f("uq_export_jobs_active_key")),
    )
    op.create_index(op.f("ix_export_jobs_user_id"), "export_jobs", ["user_id"], unique=False)
    op.create_index(op.f("ix_export_jobs_expires_at"), "export_jobs", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_export_jobs_expires_at"), table_name="export_jobs")
    op.drop_index(op.f("ix_export_jobs_user_id"), table_name="export_jobs")
    op.drop_table("export_jobs")
