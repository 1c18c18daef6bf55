"""OpenID Connect Back-Channel Logout 1.0, the provider's side (authsvc/oauth/backchannel.py): which apps are told,
what they are told, when, and that telling them never holds up the sign-out. Attacks first, then every trigger, then
delivery against a real receiver on a socket (through the shared outbox and its worker)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask import Flask, request
from joserfc import jwt
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, create_user, csrf_token
from tests.functional.helpers import form_post, login
from tests.functional.oauth_helpers import REDIRECT, get_code, redeem, register

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
RP_URI = "https://rp.example/backchannel-logout"


# --- helpers ------------------------------------------------------------------------------------------------------------
def provider(app):
    return app.extensions["authsvc.oauth"]


def sign_in_to(app, client, client_id, secret):
    """The signed-in browser ``client`` authorizes ``client_id``; returns the token response (with the ID token)."""
    code, verifier = get_code(client, client_id)
    r = redeem(client, client_id, secret, code, verifier)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json


def id_claims(app, id_token):
    with app.app_context():
        return jwt.decode(id_token, provider(app).keys.public_keyset(), algorithms=["RS256", "ES256"]).claims


def bcl_rows(app):
    from authsvc.extensions import db
    from authsvc.models.signals import OutboxItem

    with app.app_context():
        rows = db.session.execute(select(OutboxItem).where(OutboxItem.kind == "bcl").order_by(OutboxItem.id)).scalars()
        out = [{"target": r.target, "jti": r.jti, "payload": json.loads(r.payload), "attempts": r.attempts,
                "delivered": r.delivered_at is not None, "failed": r.failed_at is not None,
                "last_error": r.last_error} for r in rows]
        db.session.remove()
        return out


def user_row(app, email):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        u = db.session.execute(select(User).where(User.email == email)).scalar_one()
        db.session.expunge(u)
        return u


def live_sessions(app, uid):
    from authsvc.extensions import db
    from authsvc.models import UserSession

    with app.app_context():
        return list(db.session.execute(select(UserSession.id, UserSession.login_id).where(
            UserSession.user_id == uid, UserSession.revoked_at.is_(None)).order_by(UserSession.created_at)).all())


def worker(app):
    return app.extensions["authsvc.signals"].worker


def run_worker(app):
    with app.app_context():
        return worker(app).run_once()


class Receiver:
    """A stand-in relying party on a real socket: records each POST; ``mode`` = ok | 204 | 500 | hang."""

    def __init__(self):
        self.mode = "ok"
        self.got: list[dict] = []
        self.release = threading.Event()
        rp = Flask("receiver")

        @rp.post("/bcl")
        def bcl():
            self.got.append({"form": request.form.to_dict(), "ctype": request.content_type})
            if self.mode == "hang":
                self.release.wait(10)
            if self.mode == "500":
                return "boom", 500
            if self.mode == "204":
                return "", 204
            return "", 200

        @rp.post("/redirect")
        def redirect_away():
            self.got.append({"form": request.form.to_dict(), "redirect": True})
            return "", 307, {"Location": self.url + "/bcl"}

        self.server = make_server("127.0.0.1", 0, rp, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def decode_logout(app, token):
    with app.app_context():
        return jwt.decode(token, provider(app).keys.public_keyset(), algorithms=["RS256", "ES256"])


# --- registration ---------------------------------------------------------------------------------------------------------
HOSTILE_URIS = [
    ("https://rp.example/bcl#frag", "fragment"),
    ("https://user:pw@rp.example/bcl", "user info"),
    ("https://rp.example%40evil.example/bcl", "user info"),
    ("http://rp.example/bcl", "https"),  # clear text over a network
    ("http://127.0.0.1.evil.example/bcl", "https"),  # not the loopback IP, whatever it starts with
    ("http://localhost:8000/bcl", "https"),  # a name can resolve anywhere: IP literals only
    ("javascript:alert(1)", "https"),
    ("/relative/bcl", "https"),
    ("https:///no-host", "https"),
    ("https://rp.example:0/bcl", "https"),
    ("https://rp.example:99999/bcl", "port"),
    ("https://rp.example/b cl", "spaces"),
    ("https://rp.example/b\\cl", "backslashes"),
    ("https://rp.exämple/bcl", "non-ASCII"),
    ("https://rp.example/\u0000", "control"),
    ("https://rp.example/" + "a" * 2100, "user info"),  # oversized
]


@pytest.mark.parametrize("uri,why", HOSTILE_URIS)
def test_hostile_backchannel_logout_uris_are_refused(app, uri, why):
    from authsvc.oauth.clients import ClientError

    with app.app_context():
        with pytest.raises(ClientError) as exc:
            provider(app).clients.create(name="x", redirect_uris=[REDIRECT], backchannel_logout_uri=uri)
        assert exc.value.field == "backchannel_logout_uri"


@pytest.mark.parametrize("value", [42, ["https://rp.example/bcl"], {"u": 1}])
def test_backchannel_logout_uri_of_the_wrong_type_is_refused(app, value):
    from authsvc.oauth.clients import ClientError

    with app.app_context():
        with pytest.raises(ClientError):
            provider(app).clients.create(name="x", redirect_uris=[REDIRECT], backchannel_logout_uri=value)


def test_http_backchannel_uri_only_for_confidential_clients_on_loopback(app):
    from authsvc.oauth.clients import ClientError

    with app.app_context():
        clients = provider(app).clients
        row, _ = clients.create(name="c", redirect_uris=[REDIRECT], backchannel_logout_uri="http://127.0.0.1:9/b?x=1")
        assert row.backchannel_logout_uri == "http://127.0.0.1:9/b?x=1"  # the query is kept as registered (§2.2)
        with pytest.raises(ClientError):
            clients.create(name="p", client_type="public", redirect_uris=[REDIRECT],
                           backchannel_logout_uri="http://127.0.0.1:9/b")
        row, _ = clients.create(name="p", client_type="public", redirect_uris=[REDIRECT],
                                backchannel_logout_uri="https://spa.example/b", backchannel_logout_session_required=True)
        assert row.backchannel_logout_session_required is True
        clients.update(row.id, backchannel_logout_uri="")  # cleared
        assert clients.get(row.id).backchannel_logout_uri is None


def test_cli_sets_and_clears_the_backchannel_logout_uri(app):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["clients", "create", "--name", "cli rp", "--redirect-uri", REDIRECT,
                            "--backchannel-logout-uri", "https://rp.example/bcl",
                            "--backchannel-logout-session-required"])
    assert r.exit_code == 0, r.output
    cid = r.output.split("client_id:")[1].split()[0]
    with app.app_context():
        c = provider(app).clients.get(cid)
        assert c.backchannel_logout_uri == "https://rp.example/bcl" and c.backchannel_logout_session_required
    r = runner.invoke(args=["clients", "update", cid, "--backchannel-logout-uri", "http://rp.example/bcl"])
    assert r.exit_code != 0 and "backchannel_logout_uri" in r.output  # refused with the setting named, not a trace
    r = runner.invoke(args=["clients", "update", cid, "--backchannel-logout-uri", "",
                            "--no-backchannel-logout-session-required"])
    assert r.exit_code == 0, r.output
    with app.app_context():
        c = provider(app).clients.get(cid)
        assert c.backchannel_logout_uri is None and not c.backchannel_logout_session_required


def test_admin_form_sets_the_uri_and_answers_bad_input_with_400(app):
    from tests.functional.admin_helpers import admin_client

    admin = admin_client(app)
    page = admin.get("/admin/oauth/new")
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "name": "Photo app",
            "client_type": "confidential", "redirect_uris": "https://photos.example/cb\n",
            "grant_types": ["authorization_code", "refresh_token"], "scopes": ["openid", "email"],
            "token_format": "opaque", "access_token_ttl": "", "quota_per_minute": "120"}
    for bad in ("https://user@photos.example/bcl", "http://photos.example/bcl", "https://photos.example/b#x",
                "x" * 2001, "https://photos.example/\u202ebcl"):
        r = admin.post("/admin/oauth/new", data=dict(data, backchannel_logout_uri=bad))
        assert r.status_code == 400, bad
        assert 'has-error' in r.get_data(as_text=True)
    r = admin.post("/admin/oauth/new", data=dict(data, backchannel_logout_uri="https://photos.example/bcl",
                                                  backchannel_logout_session_required="y"))
    assert r.status_code == 200
    import re

    cid = re.search(r'<dd class="mono">([^<]+)</dd>', r.get_data(as_text=True)).group(1)
    with app.app_context():
        c = provider(app).clients.get(cid)
        assert c.backchannel_logout_uri == "https://photos.example/bcl" and c.backchannel_logout_session_required
    edit = admin.get(f"/admin/oauth/{cid}/edit")
    assert "https://photos.example/bcl" in edit.get_data(as_text=True)
    r = admin.post(f"/admin/oauth/{cid}/edit", data=dict(data, csrf_token=csrf_token(edit.get_data(as_text=True)),
                                                          backchannel_logout_uri=""))
    assert r.status_code == 302
    with app.app_context():
        c = provider(app).clients.get(cid)
        assert c.backchannel_logout_uri is None and not c.backchannel_logout_session_required


def test_discovery_announces_backchannel_logout_with_sid(client):
    meta = client.get("/.well-known/openid-configuration").json
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert "sid" in meta["claims_supported"]


# --- sid -------------------------------------------------------------------------------------------------------------------
def test_sid_is_stable_per_login_and_reveals_nothing(app, client):
    """§2.1: the sid of ID tokens is the login's, the same in every ID token of that sign-in (today it was the grant
    id, new per authorization), another sign-in has another, and it is neither the session's cookie hash nor any
    prefix of it, nor the grant id."""
    a, sa = register(app, name="A")
    b, sb = register(app, name="B")
    uid = create_user(app)
    assert login(client).status_code == 302
    t1 = sign_in_to(app, client, a, sa)
    t2 = sign_in_to(app, client, a, sa)
    t3 = sign_in_to(app, client, b, sb)
    sids = {id_claims(app, t["id_token"])["sid"] for t in (t1, t2, t3)}
    assert len(sids) == 1
    sid = sids.pop()
    [(session_id, login_id)] = live_sessions(app, uid)
    assert sid == login_id and len(sid) >= 22
    assert sid not in session_id and session_id[:16] not in sid
    assert all(not t["refresh_token"].startswith(sid) for t in (t1, t2, t3))  # the grant id prefixes refresh tokens

    other = app.test_client()
    assert login(other).status_code == 302
    t4 = sign_in_to(app, other, a, sa)
    assert id_claims(app, t4["id_token"])["sid"] != sid


# --- who is told -------------------------------------------------------------------------------------------------------------
def test_only_clients_with_a_uri_and_tokens_from_the_ended_login_are_told(app, client):
    told, st = register(app, name="told", backchannel_logout_uri=RP_URI)
    silent, ss = register(app, name="no uri")
    elsewhere, se = register(app, name="other login only", backchannel_logout_uri="https://other.example/bcl")
    unused, _ = register(app, name="never used", backchannel_logout_uri="https://unused.example/bcl")
    uid = create_user(app)
    assert login(client).status_code == 302
    sign_in_to(app, client, told, st)
    sign_in_to(app, client, silent, ss)
    second = app.test_client()
    assert login(second).status_code == 302
    sign_in_to(app, second, elsewhere, se)  # the same user, another sign-in
    bob = create_user(app, email="bob@example.com")
    bob_browser = app.test_client()
    assert login(bob_browser, email="bob@example.com").status_code == 302
    sign_in_to(app, bob_browser, told, st)  # the same app, another user

    (first_sid, first_login), _ = live_sessions(app, uid)
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    rows = bcl_rows(app)
    assert [r["target"] for r in rows] == [told]  # not the app without a URI, the other sign-in's app, or unused
    assert rows[0]["payload"]["sid"] == first_login
    assert rows[0]["payload"]["sub"] == user_row(app, "alice@example.com").sub != user_row(app, "bob@example.com").sub
    assert len(live_sessions(app, bob)) == 1 and len(live_sessions(app, uid)) == 1  # nobody else signed out


def test_each_app_gets_its_own_audience_and_only_the_ended_login(app, client, receiver):
    a, sa = register(app, name="A", backchannel_logout_uri="http://127.0.0.1:1/unused")
    b, sb = register(app, name="B", backchannel_logout_uri="http://127.0.0.1:1/unused")
    with app.app_context():
        for cid in (a, b):
            provider(app).clients.update(cid, backchannel_logout_uri=receiver.url + "/bcl")
    uid = create_user(app)
    assert login(client).status_code == 302
    ida = sign_in_to(app, client, a, sa)["id_token"]
    sign_in_to(app, client, b, sb)
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    assert run_worker(app).delivered == 2
    tokens = [decode_logout(app, g["form"]["logout_token"]) for g in receiver.got]
    assert sorted(t.claims["aud"] for t in tokens) == sorted([a, b])  # one audience each: A never sees B's token
    sid = id_claims(app, ida)["sid"]
    sub = user_row(app, "alice@example.com").sub
    assert all(t.claims["sid"] == sid and t.claims["sub"] == sub for t in tokens)
    assert len({t.claims["jti"] for t in tokens}) == 2
    assert all(g["ctype"].startswith("application/x-www-form-urlencoded") for g in receiver.got)


def test_logout_token_is_not_an_id_token(app, client, receiver):
    """§2.4 / §4.1: typed logout+jwt, an events claim with the back-channel logout member, iss/aud/iat/exp/jti, no
    nonce; an RP's ID-token check (Authlib's, with its nonce) refuses it, and the ID token is typed otherwise."""
    from authlib.oidc.core import CodeIDToken
    from joserfc.errors import MissingClaimError

    a, sa = register(app, name="A", backchannel_logout_uri=receiver.url + "/bcl")
    create_user(app)
    assert login(client).status_code == 302
    tok = sign_in_to(app, client, a, sa)
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    run_worker(app)
    [got] = receiver.got
    lt = decode_logout(app, got["form"]["logout_token"])
    assert lt.header["typ"] == "logout+jwt" and lt.header["alg"] in ("RS256", "ES256") and lt.header["kid"]
    assert lt.claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in lt.claims
    assert {"iss", "aud", "iat", "exp", "jti", "sub", "sid"} <= set(lt.claims)
    assert lt.claims["exp"] - lt.claims["iat"] <= 300
    assert decode_logout(app, tok["id_token"]).header.get("typ") != "logout+jwt"
    claims = CodeIDToken(lt.claims, lt.header, options={"iss": {"value": lt.claims["iss"]}, "aud": {"value": a}},
                         params={"nonce": "n-0S6_WzA2Mj", "client_id": a})
    with pytest.raises(MissingClaimError) as exc:
        claims.validate(now=lt.claims["iat"])  # an RP expecting an ID token for its nonce refuses it
    assert "nonce" in str(exc.value)


def test_step_up_keeps_the_sid_and_the_logout_after_it_tells_every_app_of_the_login(app, client):
    """A step-up replaces the session's token but not the login: nothing is sent, and the sid stays; the logout that
    follows tells the apps signed in before and after the step-up, once each, with that sid."""
    from tests.functional.mfa_helpers import SESSION, cookie

    before, sb = register(app, name="before", backchannel_logout_uri=RP_URI, backchannel_logout_session_required=True)
    after, sa = register(app, name="after", backchannel_logout_uri="https://after.example/bcl")
    uid = create_user(app)
    assert login(client).status_code == 302
    sid1 = id_claims(app, sign_in_to(app, client, before, sb)["id_token"])["sid"]
    [(old_id, _)] = live_sessions(app, uid)
    with app.test_request_context("/"):
        from authsvc.services import services

        s = services()
        info, user = s.sessions.check(cookie(client, SESSION))
        assert info.login_id == sid1
        issued = s.mfa.step_up(info, user, "totp", _ctx())
    assert bcl_rows(app) == []  # a rotation is not a logout
    client.set_cookie(SESSION, issued.token, domain="localhost", path="/", secure=True)
    [(new_id, new_login)] = live_sessions(app, uid)
    assert new_id != old_id and new_login == sid1
    sid2 = id_claims(app, sign_in_to(app, client, after, sa)["id_token"])["sid"]
    assert sid2 == sid1
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    rows = bcl_rows(app)
    assert sorted((r["target"], r["payload"]["sid"]) for r in rows) == sorted([(before, sid1), (after, sid1)])


# --- every way a sign-in ends -------------------------------------------------------------------------------------------------
def _ctx():
    from authsvc.accounts.login import RequestContext

    return RequestContext("127.0.0.1", "pytest")


def _with_user(app, uid, fn):
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    with app.app_context():
        fn(services(), db.session.get(User, uid))
        db.session.remove()


def trigger_logout(app, client, uid):
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302


def trigger_end_this_session(app, client, uid):
    [(sid, _)] = live_sessions(app, uid)
    other = app.test_client()
    assert login(other).status_code == 302
    r = form_post(other, "/account", {"target": sid}, post_url="/account/sessions/revoke")
    assert r.status_code in (302, 303), r.status_code


def trigger_end_all(app, client, uid):
    assert form_post(client, "/account", {}, post_url="/account/sessions/revoke-all").status_code in (302, 303)


def trigger_not_me(app, client, uid):
    def go(s, user):
        token = s.tokens.issue("notme", user.id, 3600)
        assert s.accounts.report_not_me(token, _ctx()) is not None
    _with_user(app, uid, go)


def trigger_admin_disable(app, client, uid):
    r = app.test_cli_runner().invoke(args=["admin", "disable", "--email", "alice@example.com"])
    assert r.exit_code == 0, r.output


def trigger_password_change(app, client, uid):
    _with_user(app, uid, lambda s, user: s.accounts.change_password(user, PASSWORD, PASSWORD + " and more", _ctx()))


def trigger_password_reset(app, client, uid):
    def go(s, user):
        token = s.tokens.issue("reset", user.id, 1800)
        assert s.accounts.reset_password(token, PASSWORD + " but new", _ctx()) is not None
    _with_user(app, uid, go)


def trigger_drift(app, client, uid):
    [(sid, _)] = live_sessions(app, uid)
    _with_user(app, uid, lambda s, user: s.sessions._end(user.id, sid, "drift_end:country"))


def trigger_dbsc(app, client, uid):
    from authsvc import dbsc

    [(sid, _)] = live_sessions(app, uid)
    with app.test_request_context("/dbsc/refresh", method="POST"):
        from authsvc.extensions import db
        from authsvc.models import User

        dbsc._end(db.session.get(User, uid), sid, "dbsc_forged")


def trigger_erasure(app, client, uid):
    from authsvc.web.center import privacy

    with app.test_request_context("/account/delete"):
        from authsvc.extensions import db
        from authsvc.models import User

        privacy().erase(db.session.get(User, uid), oauth=provider(app))


def trigger_rp_initiated(app, client, uid, id_token=None):
    r = client.get("/oauth2/logout", query_string={"id_token_hint": id_token})
    assert r.status_code == 200, r.status_code
    html = r.get_data(as_text=True)
    import re

    hidden = {m.group(1): m.group(2) for m in re.finditer(r'type="hidden" name="([^"]+)" value="([^"]*)"', html)}
    hidden["csrf_token"] = csrf_token(html)
    r = client.post("/oauth2/logout", data=hidden, query_string={"id_token_hint": id_token})
    assert r.status_code in (200, 302, 303), r.status_code


TRIGGERS = {
    "logout": trigger_logout, "rp_initiated": trigger_rp_initiated, "end_this_session": trigger_end_this_session,
    "end_all": trigger_end_all, "not_me": trigger_not_me, "admin_disable": trigger_admin_disable,
    "password_change": trigger_password_change, "password_reset": trigger_password_reset, "drift": trigger_drift,
    "dbsc": trigger_dbsc, "erasure": trigger_erasure,
}


@pytest.mark.parametrize("how", sorted(TRIGGERS))
def test_every_way_a_sign_in_ends_tells_the_app(app, client, how):
    cid, secret = register(app, name="A", backchannel_logout_uri=RP_URI, post_logout_redirect_uris=[REDIRECT])
    uid = create_user(app)
    sub = user_row(app, "alice@example.com").sub
    assert login(client).status_code == 302
    tok = sign_in_to(app, client, cid, secret)
    sid = id_claims(app, tok["id_token"])["sid"]
    assert bcl_rows(app) == []
    fn = TRIGGERS[how]
    if how == "rp_initiated":
        fn(app, client, uid, tok["id_token"])
    else:
        fn(app, client, uid)
    rows = bcl_rows(app)
    assert [(r["target"], r["payload"]["sid"], r["payload"]["sub"]) for r in rows] == [(cid, sid, sub)], how


def test_revocation_and_its_notice_commit_together(app, client):
    """The notice is written in the revocation's transaction: a revocation that fails after it leaves neither."""
    cid, secret = register(app, name="A", backchannel_logout_uri=RP_URI)
    uid = create_user(app)
    assert login(client).status_code == 302
    sign_in_to(app, client, cid, secret)

    def boom(user_id, sids, reason):
        raise RuntimeError("database went away mid-revocation")

    with app.app_context():
        from authsvc.extensions import db
        from authsvc.models import User
        from authsvc.services import services

        services().sessions.ending_writers.append(boom)
        try:
            with pytest.raises(RuntimeError):
                services().sessions.revoke_all(db.session.get(User, uid), "user_revoked_all")
            db.session.rollback()
        finally:
            services().sessions.ending_writers.remove(boom)
    assert bcl_rows(app) == [] and len(live_sessions(app, uid)) == 1


# --- delivery ----------------------------------------------------------------------------------------------------------------
def _signed_in_app(app, client, uri):
    cid, secret = register(app, name="A", backchannel_logout_uri=uri)
    create_user(app)
    assert login(client).status_code == 302
    sign_in_to(app, client, cid, secret)
    return cid


def test_rp_answering_500_does_not_block_logout_and_is_retried_with_the_same_jti(app, client, receiver):
    _signed_in_app(app, client, receiver.url + "/bcl")
    receiver.mode = "500"
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    assert receiver.got == []  # the sign-out answered without calling the app
    assert client.get("/account").status_code == 302  # and it is signed out
    res = run_worker(app)
    assert res.retried == 1
    [row] = bcl_rows(app)
    assert row["attempts"] == 1 and not row["delivered"] and "HTTP 500" in row["last_error"]
    receiver.mode = "ok"
    app.extensions["authsvc"].clock.advance(3600)
    assert run_worker(app).delivered == 1
    jtis = [decode_logout(app, g["form"]["logout_token"]).claims["jti"] for g in receiver.got]
    assert len(jtis) == 2 and jtis[0] == jtis[1] == row["jti"]  # the RP dedupes the retry by jti
    assert bcl_rows(app)[0]["delivered"]


def test_rp_that_hangs_is_cut_off_and_retried(app, client, receiver):
    _signed_in_app(app, client, receiver.url + "/bcl")
    app.extensions["authsvc.oauth"].backchannel.timeout = 0.5
    receiver.mode = "hang"
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    t0 = time.process_time()
    res = run_worker(app)
    assert res.retried == 1
    assert "Timeout" in bcl_rows(app)[0]["last_error"] or "timed out" in bcl_rows(app)[0]["last_error"].lower()
    receiver.release.set()
    receiver.mode = "204"  # §2.8: 204 counts as success too
    app.extensions["authsvc"].clock.advance(3600)
    assert run_worker(app).delivered == 1
    assert time.process_time() - t0 < 60  # sanity only: the worker did not spin


def test_redirects_are_not_followed(app, client, receiver):
    _signed_in_app(app, client, receiver.url + "/redirect")
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    assert run_worker(app).retried == 1
    assert len(receiver.got) == 1 and receiver.got[0].get("redirect")  # the 307 was not followed to /bcl
    assert "HTTP 307" in bcl_rows(app)[0]["last_error"]


def test_a_client_whose_uri_was_removed_or_that_was_deleted_is_not_told(app, client, receiver):
    cid = _signed_in_app(app, client, receiver.url + "/bcl")
    assert form_post(client, "/account", {}, post_url="/logout").status_code == 302
    with app.app_context():
        provider(app).clients.update(cid, backchannel_logout_uri="")
    res = run_worker(app)
    assert res.delivered == 1 and receiver.got == []  # nothing to tell, and no retry storm
