"""Query shapes of the admin pages at size (issue 20). The views stay thin: they ask here for a bounded query.

Users list paging is keyset paging on (created_at, id), newest first: ``?before=<id>`` is the id of the last account
of the page shown; the next page is the accounts strictly older than it in that order. The database walks
``ix_users_created_at`` (migration 0009_scale_indexes) backwards from that point and stops after one page, so the
10 000th page costs what the first does (an OFFSET would read and discard every row before it), and an account
created while the operator pages never shifts or repeats a row of the later pages."""

from __future__ import annotations

from flask import abort
from sqlalchemy import Select, and_, or_, select

from authsvc.models import User
from authsvc.models.base import parse_id

USERS_PER_PAGE = 100


def users_newest_first(db, before_raw: str | None) -> Select:
    """The newest USERS_PER_PAGE accounts, or those older than account ``before_raw`` (keyset; see the module); one
    row more than a page is asked for, so that the caller knows whether there is a next page.

    A malformed cursor (not an id: wildcards, NUL, 10 kB, negative, past the id range) is a 400; the id of an account
    that no longer exists is a 400 too (the page it continued is gone: the operator starts again from the newest)."""
    query = select(User).order_by(User.created_at.desc(), User.id.desc()).limit(USERS_PER_PAGE + 1)
    if before_raw is None:
        return query
    uid = parse_id(before_raw)
    anchor = db.session.get(User, uid) if uid is not None else None
    if anchor is None:
        abort(400, description="before must be the id of an existing account")
    # Written as "created_at <= c AND (created_at < c OR id < i)" rather than a row comparison: the first term is the
    # index condition on ix_users_created_at on both PostgreSQL and SQLite, the second only breaks ties.
    return query.where(and_(User.created_at <= anchor.created_at,
                            or_(User.created_at < anchor.created_at, User.id < anchor.id)))
