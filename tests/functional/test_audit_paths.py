"""Issue 12 item 4: after every audited path — web pages, the JSON API, the lean WSGI paths (OAuth refresh and
introspection, the API session check), the OAuth flow with revoke and replay, the CLI — the whole audit chain must
verify. Run on SQLite and on PostgreSQL (AUTHSVC_TEST_DATABASE_URL)."""

from __future__ import annotations

from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link
from tests.functional.admin_helpers import admin_client, confirmed_post
from tests.functional.helpers import form_post, login
from tests.functional.oauth_helpers import basic, code_tokens, register, token


def test_every_audited_path_leaves_a_chain_that_verifies(app, client):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    # web: registration + confirmation, wrong password, sign-in, sign-out
    r = form_post(client, "/register", {"email": "web@example.com", "password": PASSWORD,
                                        "confirm": PASSWORD})
    assert r.status_code in (200, 302)
    link = outbox_link(app, "web@example.com", "verify")
    assert form_post(client, link, {}).status_code == 302
    assert login(client, "web@example.com", "wrong password here").status_code in (200, 401)
    assert login(client, "web@example.com").status_code == 302
    form_post(client, "/account", {}, post_url="/logout")

    # JSON API: register, failed and good login, the lean session check, revoke-all, logout
    api = app.test_client()
    assert api.post("/api/v1/register", json={"email": "api@example.com", "password": PASSWORD}).status_code == 202
    create_user(app, "api2@example.com")
    assert api.post("/api/v1/login", json={"email": "api2@example.com", "password": "nope" * 4}).status_code == 401
    r = api.post("/api/v1/login", json={"email": "api2@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.json
    bearer = {"Authorization": "Bearer " + r.json["session_token"]}
    assert api.get("/api/v1/session", headers=bearer).status_code == 200  # authsvc.api.fastpath
    assert api.post("/api/v1/logout", headers=bearer).status_code in (200, 204)

    # OAuth: code, refresh (lean path), introspect (lean path), revoke (uid from the Redis token record), replay
    oauth = app.test_client()
    cid, secret, first = code_tokens(app, oauth)
    r = token(oauth, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 200, r.json
    second = r.json
    assert oauth.post("/oauth2/introspect", data={"token": second["access_token"]},
                      headers=basic(cid, secret)).status_code == 200
    assert oauth.post("/oauth2/revoke", data={"token": second["access_token"]},
                      headers=basic(cid, secret)).status_code == 200
    r = token(oauth, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(cid, secret))
    assert r.status_code == 400  # replay of a rotated token (lean path): audited as reuse, the family revoked
    cid2, secret2, other = code_tokens(app, app.test_client())  # revoke a live refresh token (uid from Redis)
    assert oauth.post("/oauth2/revoke", data={"token": other["refresh_token"]},
                      headers=basic(cid2, secret2)).status_code == 200
    rs_id, rs_secret = register(app, name="RS", redirect_uris=[], grant_types=["client_credentials"],
                                quota_per_minute=2)
    codes = [oauth.post("/oauth2/introspect", data={"token": "garbage"}, headers=basic(rs_id, rs_secret),
                        environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for _ in range(4)]
    assert codes[-1] == 429  # the lean introspection path audits the first refusal, with its own request context

    # MFA and the admin panel: TOTP enrolment, an aal2 sign-in, admin reads and actions, a refused admin action
    admin = admin_client(app)
    bob = create_user(app, "bob@example.com")
    assert admin.get(f"/admin/users/{bob}").status_code == 200
    for action in ("disable", "enable", "end-sessions"):
        assert confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/{action}").status_code == 302
    other_admin = create_user(app, "admin2@example.com", is_admin=True)
    page = admin.get(f"/admin/users/{other_admin}").get_data(as_text=True)
    assert admin.post(f"/admin/users/{other_admin}/disable",
                      data={"csrf_token": csrf_token(page)}).status_code == 403

    # password reset by e-mail, account deletion (tombstone)
    reset = app.test_client()
    form_post(reset, "/reset", {"email": "bob@example.com"})
    link = outbox_link(app, "bob@example.com", "reset")
    new_password = PASSWORD + " again"
    r = form_post(reset, link, {"new_password": new_password})
    assert r.status_code in (200, 302), r.status_code
    gone = app.test_client()
    login(gone, "api2@example.com")
    assert form_post(gone, "/account/delete", {"password": PASSWORD, "confirm": "y"}).status_code == 302

    # CLI
    runner = app.test_cli_runner()
    out = runner.invoke(args=["admin", "create", "--email", "ops@example.com", "--password-stdin"],
                        input=PASSWORD + "\n")
    assert out.exit_code == 0, out.output
    assert runner.invoke(args=["admin", "disable", "--email", "bob@example.com"]).exit_code == 0
    assert runner.invoke(args=["mfa", "reset", "--email", "root@example.com"]).exit_code == 0

    with app.app_context():
        tags = set(db.session.execute(db.select(SecurityEvent.tag)).scalars())
    assert {"oauth:token:revoke", "oauth:refresh:reuse", "oauth:quota:exceeded", "account:login:failure",
            "account:logout:success", "admin:read:user_detail", "admin:user:disable", "account:delete:success",
            "account:reset:success"} <= tags, sorted(tags)
    out = runner.invoke(args=["audit", "verify"])
    assert out.exit_code == 0 and "audit log intact" in out.output, out.output
