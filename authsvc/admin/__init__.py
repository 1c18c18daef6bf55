"""Operator pages. The full panel is its own issue; the foundation ships the outbox view behind the admin role."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from authsvc.services import services
from authsvc.web.auth import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/outbox")
@admin_required
def outbox():
    box = services().outbox
    if box is None:
        abort(404)  # SMTP is configured: mail left the building, nothing is kept here
    return render_template("admin/outbox.html", messages=box.messages()[:200])
