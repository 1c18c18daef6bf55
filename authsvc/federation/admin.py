"""Admin panel: upstream identity providers (list, add, remove) — behind the same gate as every operator view."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest

from authsvc.admin.gate import admin_gate
from authsvc.web.forms import ActionForm

bp = Blueprint("federation_admin", __name__, url_prefix="/admin/idp")


def _fed():
    from flask import current_app

    return current_app.extensions["authsvc_federation"]


def _stats():
    from authsvc.extensions import db
    from authsvc.models import FederatedIdentity

    rows = db.session.execute(select(FederatedIdentity.provider_id, func.count(), func.max(FederatedIdentity.last_used_at))
                              .group_by(FederatedIdentity.provider_id)).all()
    return {pid: (n, last) for pid, n, last in rows}


@bp.get("/")
@admin_gate
def providers(session, admin):
    return render_template("federation/admin.html", providers=_fed().providers(enabled_only=False), stats=_stats(),
                           form=ActionForm(), kinds=("oidc", "google", "apple", "microsoft", "github"),
                           redirect_uri=_fed().redirect_uri, error=None)


@bp.post("/")
@admin_gate
def add(session, admin):
    from authsvc.federation.service import FederationRefused

    if not ActionForm().validate_on_submit():
        raise BadRequest("form expired")
    f = request.form
    try:
        row = _fed().add_provider(slug=(f.get("slug") or f.get("kind") or "")[:64], kind=f.get("kind", "")[:16],
                                  client_id=(f.get("client_id") or "")[:255],
                                  client_secret=(f.get("client_secret") or None),
                                  issuer=(f.get("issuer") or None), discovery_url=(f.get("discovery_url") or None),
                                  name=(f.get("name") or None), trust_mfa=f.get("trust_mfa") == "yes")
    except FederationRefused as exc:
        return render_template("federation/admin.html", providers=_fed().providers(enabled_only=False),
                               stats=_stats(), form=ActionForm(), kinds=("oidc", "google", "apple", "microsoft",
                                                                         "github"),
                               redirect_uri=_fed().redirect_uri, error=exc.message), 400
    from flask_babel import gettext as _

    flash(_("Added %(name)s. Register %(uri)s at the provider.", name=row.name, uri=_fed().redirect_uri(row)), "success")
    return redirect(url_for("federation_admin.providers"))


@bp.post("/<slug>/remove")
@admin_gate
def remove(session, admin, slug: str):
    """Confirmed with a reason (authsvc/admin/confirmation.py); the reason goes to ``admin:idp:remove``."""
    from flask_babel import gettext as _
    from werkzeug.exceptions import NotFound

    from authsvc.admin import confirmation as cf
    from authsvc.services import services
    from authsvc.web.http import request_context

    row = _fed().provider(slug)
    if row is None:
        raise NotFound()
    linked = _stats().get(row.id, (0, None))[0]
    reason, _payload, response = cf.confirmed(admin, f"idp:remove:{slug}", {}, lambda p: cf.Plan(
        _("Remove %(name)s", name=row.name),
        _("The provider is removed with the %(n)s sign-in identities linked through it; those users sign in with "
          "their password or another method.", n=linked),
        url_for("federation_admin.providers"), targets=[(row.name, slug)]))
    if response is not None:
        return response
    if not _fed().remove_provider(slug):
        raise NotFound()
    ctx = request_context()
    services().audit.record("admin:idp:remove", "success", actor_id=admin.id, ip=ctx.ip, user_agent=ctx.user_agent,
                            details={"slug": slug, "identities": linked, "reason": reason})
    flash(_("Provider removed, with the identities linked through it."), "success")
    return redirect(url_for("federation_admin.providers"))
