"""Admin users list at size (issue 20): keyset paging on (created_at, id) — stable while accounts are created, a
hostile cursor is a 400, and on PostgreSQL the page is read from ix_users_created_at, not a scan of users."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re

import pytest

from tests.functional.admin_helpers import admin_client

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _accounts(app, n: int, start: int = 0, at=None) -> None:
    """``n`` accounts in one flush; three share each created_at, so the id must break ties."""
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        db.session.add_all([User(email=f"p{start + i}@example.com",
                                 created_at=at or BASE + dt.timedelta(minutes=(start + i) // 3))
                            for i in range(n)])
        db.session.commit()


def _page(client, **args) -> tuple[list[int], str | None]:
    r = client.get("/admin/users", query_string=args)
    assert r.status_code == 200, r.status_code
    body = r.get_data(as_text=True)
    ids = [int(x) for x in re.findall(r'<span class="muted">#(\d+)</span>', body)]
    nxt = re.search(r'<a href="([^"]+)" rel="next">', body)
    return ids, (htmllib.unescape(nxt.group(1)) if nxt else None)


def test_users_list_keyset_paging_is_stable_while_accounts_are_created(app):
    admin = admin_client(app)
    _accounts(app, 250)
    first, nxt = _page(admin)
    assert len(first) == 100 and first[0] == admin.user_id  # newest first: the administrator was created last
    # Ten accounts created while the operator reads page one: an OFFSET would shift page two by ten rows.
    _accounts(app, 10, start=1000, at=dt.datetime.now(dt.UTC))
    second, nxt2 = _page(admin, **dict(p.split("=") for p in nxt.split("?", 1)[1].split("&")))
    third, nxt3 = _page(admin, before=second[-1])
    assert len(second) == 100 and len(third) == 51 and nxt3 is None
    seen = first + second + third
    assert len(seen) == len(set(seen)) == 251  # every account exactly once, none of the new ones on later pages
    from authsvc.extensions import db
    from authsvc.models import User
    from sqlalchemy import select

    with app.app_context():  # the pages follow (created_at, id) descending, across the equal timestamps
        expected = list(db.session.execute(select(User.id).where(User.email.notlike("p10__@%"))
                                           .order_by(User.created_at.desc(), User.id.desc())).scalars())
    assert seen == expected


def test_users_list_hostile_cursor_is_a_400_never_a_500(app):
    admin = admin_client(app)
    _accounts(app, 3)
    for hostile in ("%", "_", "\x00", "1\x00", "x" * 10000, "-1", "0", "1.5", "1e3", "99999999999", " 1",
                    "\u0661", "１", "999999"):  # Arabic-Indic and full-width digits, an id nobody has
        r = admin.get("/admin/users", query_string={"before": hostile})
        assert r.status_code == 400, (hostile[:20], r.status_code)
        assert "Traceback" not in r.get_data(as_text=True)
    r = admin.get("/admin/users?before=%ED%A0%80%FF")  # invalid UTF-8
    assert r.status_code == 400
    # With a search, the cursor narrows the same way (and a bad one is still a 400).
    assert admin.get("/admin/users", query_string={"q": "p", "before": "%"}).status_code == 400
    ids, _ = _page(admin, q="p", before=admin.user_id)
    assert len(ids) == 3


def test_users_list_page_reads_the_created_at_index_on_postgresql(app):
    from authsvc.admin.queries import users_newest_first
    from authsvc.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("plan shape checked on PostgreSQL (the production database)")
    _accounts(app, 4000)
    with app.app_context():
        anchor = str(db.session.execute(db.text("SELECT id FROM users ORDER BY created_at, id LIMIT 1 OFFSET 2000"))
                     .scalar_one())
        conn = db.session.connection()
        conn.exec_driver_sql("ANALYZE users")  # real statistics of 4 000 rows; sequential scans left enabled
        for before in (None, anchor):
            with app.test_request_context():
                stmt = users_newest_first(db, before)
            compiled = stmt.compile(dialect=conn.dialect)
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
            assert "ix_users_created_at" in plan and "Seq Scan on users" not in plan, plan
        db.session.rollback()
