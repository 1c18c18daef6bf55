"""MFA: how each factor was vouched for (enrolled_aal), TOTP suspended after too many wrong codes

Revision ID: 0007_mfa_factor_trust
Revises: 0003_mfa
"""
import sqlalchemy as sa
from alembic import op

import authsvc.models.base

revision = "0007_mfa_factor_trust"
down_revision = "0003_mfa"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable ADD COLUMNs: no table rebuild on SQLite, no rewrite on PostgreSQL. NULL = enrolled before this
    # revision (treated like a password-only enrolment while it is recent, see mfa.service.unconfirmed_since).
    op.add_column("mfa_totp", sa.Column("enrolled_aal", sa.Integer(), nullable=True))
    op.add_column("mfa_totp", sa.Column("suspended_at", authsvc.models.base.UTCDateTime(), nullable=True))
    op.add_column("mfa_webauthn", sa.Column("enrolled_aal", sa.Integer(), nullable=True))
    op.add_column("mfa_recovery_codes", sa.Column("enrolled_aal", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table, cols in (("mfa_recovery_codes", ("enrolled_aal",)), ("mfa_webauthn", ("enrolled_aal",)),
                        ("mfa_totp", ("suspended_at", "enrolled_aal"))):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for col in cols:
                batch_op.drop_column(col)
