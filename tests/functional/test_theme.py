"""Operator branding: theme folder (template overrides + static files), accent colours, support link. Hostile
settings are refused at start-up; hostile paths never leave the theme folder."""

import pytest

from authsvc.config import ConfigError, load_settings

LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


@pytest.fixture
def theme(tmp_path):
    root = tmp_path / "theme"
    (root / "static").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "static" / "logo.svg").write_bytes(LOGO)
    (root / "templates" / "register.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>Join StreamCo</h1>{% endblock %}')
    (tmp_path / "secret.txt").write_text("not for you")
    return root


@pytest.mark.parametrize("setting,value", [
    ("brand_accent", "red;}body{display:none"),
    ("brand_accent", "#12345"),
    ("brand_accent_dark", "#1234567"),
    ("brand_accent", "#0b57d0</style>"),
    ("support_url", "javascript:alert(1)"),
    ("support_url", 'https://x.example/" onmouseover="alert(1)'),
    ("support_url", "data:text/html,<script>alert(1)</script>"),
])
def test_hostile_brand_settings_are_refused_at_start(setting, value):
    with pytest.raises(ConfigError) as err:
        load_settings({setting: value}, environ={})
    assert err.value.setting == "AUTHSVC_" + setting.upper()


def test_logo_must_be_a_plain_file_of_the_theme(theme):
    for bad in ("../secret.txt", "/etc/passwd", "..", "missing.svg", "static/logo.svg"):
        with pytest.raises(ConfigError):
            load_settings({"theme_dir": str(theme), "brand_logo": bad}, environ={})
    with pytest.raises(ConfigError):
        load_settings({"brand_logo": "logo.svg"}, environ={})  # no theme folder
    with pytest.raises(ConfigError):
        load_settings({"theme_dir": str(theme / "nope")}, environ={})


def test_theme_static_never_leaves_the_folder(make_app, theme):
    client = make_app(theme_dir=str(theme), brand_logo="logo.svg").test_client()
    for path in ("/theme/../secret.txt", "/theme/%2e%2e/secret.txt", "/theme/..%2fsecret.txt",
                 "/theme/%2e%2e%2fsecret.txt", "/theme//etc/passwd", "/theme/static/../../secret.txt"):
        resp = client.get(path, follow_redirects=True)  # "//" is merged by a redirect, then refused
        assert resp.status_code == 404, path
        assert b"not for you" not in resp.data


def test_no_theme_means_no_theme_files_and_no_brand_css_link(app):
    client = app.test_client()
    assert client.get("/theme/logo.svg").status_code == 404
    page = client.get("/login").get_data(as_text=True)
    assert "brand.css" not in page and "Need help?" not in page
    assert client.get("/brand.css").get_data(as_text=True).strip() == ""


def test_theme_overrides_templates_serves_logo_and_colours(make_app, theme):
    app = make_app(theme_dir=str(theme), brand_logo="logo.svg", brand_accent="#aa0055",
                   support_url="https://help.streamco.example/account", service_name="StreamCo")
    client = app.test_client()
    page = client.get("/register").get_data(as_text=True)
    assert "<h1>Join StreamCo</h1>" in page  # the theme's register.html replaced the built-in one
    login = client.get("/login").get_data(as_text=True)
    assert "Sign in" in login  # not overridden: the built-in page, with the brand around it
    assert 'src="/theme/logo.svg"' in login and 'href="/brand.css"' in login
    assert 'href="https://help.streamco.example/account"' in login
    logo = client.get("/theme/logo.svg")
    assert logo.status_code == 200 and logo.data == LOGO and logo.headers["X-Content-Type-Options"] == "nosniff"
    css = client.get("/brand.css")
    assert css.mimetype == "text/css"
    body = css.get_data(as_text=True)
    assert ":root { --accent:#aa0055; }" in body
    assert "prefers-color-scheme: dark" in body and body.count("#aa0055") == 2  # dark defaults to the same accent
    again = client.get("/brand.css", headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304
