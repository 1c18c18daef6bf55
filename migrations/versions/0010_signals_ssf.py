"""Shared Signals transmitter: SSF streams and the subjects Receivers added to them (issue 15)

Revision ID: 0010_signals_ssf
Revises: 0004_oauth, 0010_signals_outbox

Streams belong to OAuth clients (0004_oauth); it also merges the outbox branch (the transmitter writes to it).
"""
import sqlalchemy as sa
from alembic import op

from authsvc.models.base import UTCDateTime

revision = "0010_signals_ssf"
down_revision = ("0004_oauth", "0010_signals_outbox")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssf_streams",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("endpoint_url", sa.String(length=2048), nullable=True),
        sa.Column("authorization_enc", sa.Text(), nullable=True),
        sa.Column("events_requested", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("status_reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"], name=op.f("fk_ssf_streams_client_id_oauth_clients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_streams")),
    )
    op.create_index(op.f("ix_ssf_streams_client_id"), "ssf_streams", ["client_id"], unique=False)
    op.create_table(
        "ssf_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["ssf_streams.id"], name=op.f("fk_ssf_subjects_stream_id_ssf_streams"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_subjects")),
        sa.UniqueConstraint("stream_id", "user_id", name=op.f("uq_ssf_subjects_stream_id")),
    )
    op.create_index(op.f("ix_ssf_subjects_user_id"), "ssf_subjects", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ssf_subjects_user_id"), table_name="ssf_subjects")
    op.drop_table("ssf_subjects")
    op.drop_index(op.f("ix_ssf_streams_client_id"), table_name="ssf_streams")
    op.drop_table("ssf_streams")
