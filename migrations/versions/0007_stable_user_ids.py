"""Identifiers that are never reused (issue #19): users.sub (opaque OIDC subject), AUTOINCREMENT ids on SQLite

SQLite hands out max(rowid)+1, so deleting the newest account gave its id — and with it the OIDC ``sub`` and the
audit trail — to the next registration. Three tables whose ids leave the database (users; passkeys and trusted
devices, named in URLs, forms and audit rows) are rebuilt with AUTOINCREMENT, and the sequence starts above every
user id the audit log has ever mentioned, so accounts deleted before this upgrade keep their ids too. PostgreSQL's
sequences never go back: nothing to rebuild there.

Every existing user gets a random ``sub``. ``authsvc db upgrade`` runs this with SQLite's foreign-key enforcement off
(a rebuilt parent table would otherwise cascade-delete its children) and checks the keys before committing.

Revision ID: 0007_stable_user_ids
Revises: 0003_mfa, 0005_admin
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007_stable_user_ids"
down_revision = ("0003_mfa", "0005_admin")
branch_labels = None
depends_on = None

REBUILT = ("mfa_webauthn", "mfa_trusted_devices")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("users", sa.Column("sub", sa.String(length=64), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("sub", sa.String))
    ids = [uid for (uid,) in bind.execute(sa.select(users.c.id)).all()]
    for i in range(0, len(ids), 1000):  # executemany in chunks: one round trip per thousand users
        bind.execute(users.update().where(users.c.id == sa.bindparam("uid")).values(sub=sa.bindparam("new_sub")),
                     [{"uid": uid, "new_sub": secrets.token_urlsafe(24)} for uid in ids[i:i + 1000]])
    kw = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}
    with op.batch_alter_table("users", schema=None, **kw) as batch_op:
        batch_op.alter_column("sub", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_users_sub"), ["sub"])
    if not sqlite:
        return
    for table in REBUILT:
        with op.batch_alter_table(table, schema=None, **kw):
            pass
    # Start above every id ever used, including accounts deleted before AUTOINCREMENT existed: the audit log (never
    # rewritten) still names them.
    high = bind.execute(sa.text(
        "SELECT max(v) FROM (SELECT max(id) AS v FROM users UNION ALL SELECT max(actor_id) FROM security_events "
        "UNION ALL SELECT max(subject_id) FROM security_events)")).scalar() or 0
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'users'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', :n)"), {"n": high})


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_sub"), type_="unique")
        batch_op.drop_column("sub")
