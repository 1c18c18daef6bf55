"""Users: preferred language (and time zone) for pages and e-mails

Revision ID: 0010_i18n_user_locale
Revises: 0007_must_change_reason
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_i18n_user_locale"
down_revision = "0007_must_change_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable ADD COLUMNs: no table rebuild on SQLite, no rewrite on PostgreSQL. NULL = follow the browser.
    op.add_column("users", sa.Column("locale", sa.String(length=16), nullable=True))
    op.add_column("users", sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("locale")
