"""Export my data and delete my account, over the pages and the API. Secrets are looked for by their actual values;
erasure is checked by reading every SQL table and every Redis key and value."""

import json
import re

from sqlalchemy import select, text

from authsvc.accounts.login import Decision, Reason
from tests.conftest import PASSWORD, create_user
from tests.functional.admin_helpers import CTX, audit_rows
from tests.functional.helpers import form_post, login
from tests.functional.mfa_helpers import SESSION, cookie, enrol_totp
from tests.functional.oauth_helpers import authorize, pkce, register

EMAIL = "alice@example.com"


def _rich_account(app, client):
    """An account with a password, TOTP, recovery codes, a remembered device, a consent, receipts with reasons and
    two live sessions. Returns the secret values that must never leave the server."""
    from authsvc.extensions import db
    from authsvc.models import TotpCredential, User
    from authsvc.services import services

    uid = create_user(app, email=EMAIL)
    totp_seed = enrol_totp(app, uid)
    with app.app_context():
        user = db.session.get(User, uid)
        codes = services().mfa.regenerate_recovery(user, CTX)
        device_token = services().mfa.trust_device(user, CTX)
        # A receipt with a risk decision and its reasons, through the pipeline's last stage.
        done = services().login.complete(user, CTX, Decision("step_up", 3.2, (
            Reason("new_country", "First sign-in from Iceland"), Reason("new_device", "A browser never seen"))),
            aal=2, methods=("pwd", "otp"))
        services().login._event(user, CTX, "denied", Decision("deny", 9.5, (
            Reason("impossible_travel", "Too far from the last sign-in too quickly"),)))
        secrets = {"password_hash": user.password_hash, "totp_seed": totp_seed,
                   "totp_sealed": db.session.get(TotpCredential, uid).secret, "device_token": device_token,
                   "other_session_token": done.token, "other_session_hash": done.session.info.id}
        secrets.update({f"recovery_{i}": c for i, c in enumerate(codes)})
        secrets.update({f"recovery_hash_{i}": h for i, h in enumerate(db.session.execute(
            text("SELECT code_hash FROM mfa_recovery_codes WHERE user_id = :u"), {"u": uid}).scalars())})
    client_id, client_secret = register(app, name="Photo app")
    secrets["client_secret"] = client_secret
    # Sign in on the page (TOTP is on: password, then the code) and consent to the app.
    from tests.functional.mfa_helpers import current_code, next_step, submit_totp

    login(client)
    r = submit_totp(client, current_code(app, totp_seed))
    assert r.status_code == 302
    next_step(app)
    _, challenge = pkce()
    authorize(client, client_id, challenge=challenge)
    secrets["session_token"] = cookie(client, SESSION)
    return uid, client_id, secrets


def test_export_has_history_with_reasons_and_no_secret(app, client):
    uid, client_id, secrets = _rich_account(app, client)
    r = client.get("/account/export")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="authsvc-data-')
    raw = r.get_data(as_text=True)
    data = json.loads(raw)
    assert data["format"] == "authsvc-export/1" and data["profile"]["email"] == EMAIL
    reasons = [x["text"] for e in data["login_history"] for x in e["reasons"]]
    assert "First sign-in from Iceland" in reasons and "Too far from the last sign-in too quickly" in reasons
    denied = next(e for e in data["login_history"] if e["outcome"] == "denied")
    assert denied["decision"] == "deny" and denied["risk_score"] == 9.5
    assert data["factors"]["totp"]["enrolled"] and data["factors"]["recovery_codes"]["unused"] == 10
    assert len(data["factors"]["trusted_devices"]) == 1
    assert [c["name"] for c in data["oauth_consents"]] == ["Photo app"]
    assert len([s for s in data["sessions"] if s["active"]]) == 2
    assert any(e["tag"] == "account:login:success" for e in data["audit_events"])
    for name, value in secrets.items():
        assert value and value not in raw, f"{name} leaked into the export"
    assert audit_rows(app, "account:data:export")[-1].subject_id == uid


def test_export_needs_a_recent_sign_in(app, client):
    from authsvc.services import services

    create_user(app)
    login(client)
    with app.app_context():
        services().clock.advance(11 * 60)  # past MFA's fresh_auth_seconds (600)
    r = client.get("/account/export")
    assert r.status_code == 302 and r.headers["Location"].startswith("/mfa/step-up?next=%2Faccount%2Fdata")


def test_export_over_the_api(app, client):
    create_user(app)
    token = client.post("/api/v1/login", json={"email": EMAIL, "password": PASSWORD}).get_json()["session_token"]
    r = client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    data = r.get_json()
    assert data["login_history"][0]["outcome"] == "success" and token not in r.get_data(as_text=True)
    assert client.get("/api/v1/me/export").status_code == 401
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "get" in spec["paths"]["/api/v1/me/export"] and "delete" in spec["paths"]["/api/v1/me"]


def _sql_dump(app) -> dict:
    from authsvc.extensions import db
    from authsvc.models import Base

    with app.app_context():
        with db.engine.connect() as conn:
            return {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in Base.metadata.sorted_tables}


def _redis_dump(redis) -> dict:
    out = {}
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        if kind == "string":
            try:
                out[key] = redis.get(key)
            except Exception:  # noqa: BLE001
                out[key] = ""
        elif kind == "hash":
            out[key] = json.dumps(redis.hgetall(key))
        elif kind == "set":
            out[key] = json.dumps(sorted(redis.smembers(key)))
        elif kind == "list":
            out[key] = json.dumps(redis.lrange(key, 0, -1))
        elif kind == "zset":
            out[key] = json.dumps(redis.zrange(key, 0, -1))
    return out


def _assert_erased(app, redis, uid, secrets, session_hashes):
    from authsvc.models import Base

    dump = _sql_dump(app)
    fk_cols = {(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns
               for fk in c.foreign_keys if fk.column.table.name == "users"}
    for table, rows in dump.items():
        for row in rows:
            blob = json.dumps(row, default=str)
            assert EMAIL not in blob, f"e-mail left in {table}: {row}"
            for h in session_hashes:
                assert h not in blob, f"session hash left in {table}"
            for col, value in row.items():
                if (table, col) in fk_cols or (table == "users" and col == "id"):
                    assert value != uid, f"{table}.{col} still points at the deleted user"
    # The audit log keeps its chain: old events about the user stay (no e-mail in them), the tombstone has the id only.
    events = [e for e in dump["security_events"] if e["subject_id"] == uid]
    tomb = [e for e in events if e["tag"] == "account:delete:success"]
    assert len(tomb) == 1 and tomb[0]["ip"] is None and tomb[0]["user_agent"] is None
    assert tomb[0]["actor_id"] == uid
    rdump = _redis_dump(redis)
    for key, value in rdump.items():
        for needle in [EMAIL, f"{{u{uid}}}", *session_hashes, secrets.get("device_token", EMAIL),
                       secrets.get("session_token", EMAIL)]:  # (a missing secret: no "-" placeholder, hostnames have it)
            assert needle not in key and needle not in (value or ""), f"{needle!r} left in Redis {key}"
        if value and value.startswith("{"):
            try:
                doc = json.loads(value)
            except ValueError:
                continue
            if isinstance(doc, dict):
                assert str(doc.get("uid")) != str(uid), f"Redis {key} still names the user"


def test_delete_account_erases_sql_and_redis_and_keeps_a_tombstone(app, client, redis_client):
    from authsvc.services import services

    uid, client_id, secrets = _rich_account(app, client)
    other = create_user(app, email="bob@example.com")
    bob = app.test_client()
    login(bob, email="bob@example.com")
    with app.app_context():
        session_hashes = [r for r in services().audit.db.session.execute(
            text("SELECT id FROM user_sessions WHERE user_id = :u"), {"u": uid}).scalars()]
    assert len(session_hashes) >= 2

    page = client.get("/account/delete")
    assert page.status_code == 200 and "cannot be undone" in page.get_data(as_text=True)
    bad = form_post(client, "/account/delete", {"password": "not my password at all", "confirm": "y"})
    assert bad.status_code == 401 and "not right" in bad.get_data(as_text=True)
    unticked = form_post(client, "/account/delete", {"password": PASSWORD})
    assert unticked.status_code == 400 and "Tick the box" in unticked.get_data(as_text=True)
    assert client.get("/account").status_code == 200  # nothing happened yet

    r = form_post(client, "/account/delete", {"password": PASSWORD, "confirm": "y"})
    assert r.status_code == 302 and r.headers["Location"] == "/account/deleted"
    assert "Your account is deleted" in client.get("/account/deleted").get_data(as_text=True)
    assert client.get("/account").status_code == 302  # the cookie is dead
    with app.app_context():
        assert services().sessions.check(secrets["other_session_token"]) is None
        assert services().audit.verify().ok
        assert not services().outbox.messages(to=EMAIL)
    _assert_erased(app, redis_client, uid, secrets, session_hashes)
    # Bob is untouched; the address can sign up again and the login answer is the generic one.
    assert bob.get("/account").status_code == 200 and other
    assert login(app.test_client()).status_code == 401


def test_delete_over_the_api_needs_the_password(app, client, redis_client):
    uid = create_user(app)
    token = client.post("/api/v1/login", json={"email": EMAIL, "password": PASSWORD}).get_json()["session_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.delete("/api/v1/me", json={}, headers=auth).status_code == 400
    r = client.delete("/api/v1/me", json={"password": "wrong wrong wrong"}, headers=auth)
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    assert client.delete("/api/v1/me", json={"password": PASSWORD}, headers=auth).status_code == 204
    assert client.get("/api/v1/session", headers=auth).status_code == 401
    _assert_erased(app, redis_client, uid, {}, [])


def test_notification_preference_controls_new_sign_in_mail(app, client):
    from authsvc.services import services

    def alerts():
        with app.app_context():
            return [m for m in services().outbox.messages(to=EMAIL) if m.subject.startswith("New sign-in")]

    create_user(app)
    login(client)
    page = client.get("/account")
    assert re.search(r'<input [^>]*checked id="new_sign_in"', page.get_data(as_text=True))  # on by default
    r = form_post(client, "/account", {}, post_url="/account/notifications")  # unticked box = off
    assert r.status_code == 302
    other = app.test_client()
    other.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
    login(other)
    assert alerts() == []
    form_post(client, "/account", {"new_sign_in": "y"}, post_url="/account/notifications")
    third = app.test_client()
    third.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0"
    login(third)
    assert len(alerts()) == 1
    assert [json.loads(e.details) for e in audit_rows(app, "account:preferences:update")] == [
        {"notify_new_sign_in": False}, {"notify_new_sign_in": True}]


def test_security_center_shows_readable_devices_and_apps(app, client):
    create_user(app)
    client.environ_base["HTTP_USER_AGENT"] = CTX.user_agent
    login(client)
    client_id, _ = register(app, name="Photo app")
    _, challenge = pkce()
    authorize(client, client_id, challenge=challenge)
    html = client.get("/account").get_data(as_text=True)
    assert "Chrome 131 on Linux" in html and "kind-desktop" in html
    assert "Photo app" in html and "Remove access" in html
    assert "Download my data" in html and "Delete my account" in html
    assert "<script>" not in html and " style=" not in html


def test_export_with_a_connected_app_that_used_the_account(app, client):
    """Issue 12 item 6: once an app redeemed a code (a live grant: "last used" is a datetime), the export was a 500
    and still audited as a success. It must be a JSON download naming the app, audited once as a success."""
    from tests.functional.oauth_helpers import code_tokens

    cid, _secret, tokens = code_tokens(app, client, name="Photo app")
    assert tokens["access_token"]
    r = client.get("/account/export")
    assert r.status_code == 200, r.get_data(as_text=True)[:400]
    data = json.loads(r.get_data(as_text=True))
    [app_row] = data["oauth_consents"]
    assert app_row["name"] == "Photo app" and app_row["client_id"] == cid
    assert app_row["granted_at"] and app_row["last_used"]  # ISO strings, not datetimes
    assert tokens["access_token"] not in r.get_data(as_text=True)
    assert tokens.get("refresh_token", "-") not in r.get_data(as_text=True)
    assert [e.outcome for e in audit_rows(app, "account:data:export")] == ["success"]
    # The API answers the same document.
    token = client.post("/api/v1/login", json={"email": EMAIL, "password": PASSWORD}).get_json()["session_token"]
    r = client.get("/api/v1/me/export", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.get_json()["oauth_consents"][0]["last_used"] == app_row["last_used"]
