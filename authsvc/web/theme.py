"""Operator branding: a theme folder (template overrides + static files), accent colours and a support link.

Everything here is served from our own origin, so the strict CSP (``style-src 'self'; img-src 'self' data:``) stays
as it is: the accent colours are a small generated stylesheet (``/brand.css``) rather than inline styles, and the
logo is a file of the theme folder served at ``/theme/<name>``. Colours and URLs are validated in
:mod:`authsvc.config`, so nothing the operator writes can break out of the CSS or the ``href``.
"""
from __future__ import annotations

import hashlib
import os

from flask import Blueprint, Flask, Response, abort, current_app, request, send_from_directory
from jinja2 import ChoiceLoader, FileSystemLoader

bp = Blueprint("theme", __name__)


def brand_css(settings) -> str:
    light = settings.brand_accent
    dark = settings.brand_accent_dark or light
    rules = []
    if light:
        rules.append(":root { --accent:%s; }" % light)
    if dark:
        rules.append("@media (prefers-color-scheme: dark) { :root { --accent:%s; } }" % dark)
    return "\n".join(rules) + "\n"


@bp.get("/brand.css")
def brand_stylesheet():
    css, etag = current_app.extensions["authsvc_brand_css"]
    resp = Response(css, mimetype="text/css")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.set_etag(etag)
    return resp.make_conditional(request)


@bp.get("/theme/<path:filename>")
def theme_static(filename: str):
    theme = current_app.config["AUTHSVC"].theme_dir
    if not theme:
        abort(404)
    # send_from_directory refuses paths that leave the folder (../, absolute, encoded) with a 404.
    resp = send_from_directory(os.path.join(theme, "static"), filename, max_age=3600)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def init_app(app: Flask) -> None:
    settings = app.config["AUTHSVC"]
    theme = settings.theme_dir
    if theme and os.path.isdir(os.path.join(theme, "templates")):
        # The theme's templates win; anything it does not override comes from the package.
        app.jinja_loader = ChoiceLoader([FileSystemLoader(os.path.join(theme, "templates")), app.jinja_loader])
    css = brand_css(settings)
    app.extensions["authsvc_brand_css"] = (css, hashlib.sha256(css.encode()).hexdigest()[:16])
    app.register_blueprint(bp)

    @app.context_processor
    def _brand():
        return {"brand": {
            "logo": settings.brand_logo,
            "support_url": settings.support_url,
            "css": bool(settings.brand_accent or settings.brand_accent_dark),
        }}
