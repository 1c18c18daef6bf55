"""Issue 18: every destructive operator action is confirmed with a reason (single-use ticket, audited), bulk disable /
end sessions, creating an account, resending verification, e-mails next to ids and hashes. Real SQL, real Redis.
Attacker's tests first."""

import json

import pytest

from tests.conftest import PASSWORD, create_user, csrf_token, outbox_link
from tests.functional.admin_helpers import admin_client, audit_rows, confirmed_post, ticket_of
from tests.functional.helpers import form_post, login

REASON = "Support ticket 4711: owner asked by phone"


def _status(app, uid):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        return db.session.get(User, uid).status


def _first_step(client, page, url, data=None):
    html = client.get(page).get_data(as_text=True)
    r = client.post(url, data=dict(data or {}, csrf_token=csrf_token(html)))
    assert r.status_code == 200, r.status_code
    body = r.get_data(as_text=True)
    return body, csrf_token(body), ticket_of(body)


# --- attacker's tests ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", [None, "", "   ", "ok", "x" * 501, "y" * 20_000, "fine reason\u202egnirts",
                                    "zero\u200bwidth reason", "null \x00 byte reason", "bell \x07 reason"])
def test_a_destructive_action_needs_a_valid_reason_and_changes_nothing_without_one(app, reason):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    body, token, ticket = _first_step(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable")
    assert "bob@example.com" in body and f"#{bob}" in body  # to whom, by e-mail and id
    assert "every session it has ends" in body  # what will happen
    assert _status(app, bob) == "active"  # the first step changes nothing
    data = {"csrf_token": token, "ticket": ticket}
    if reason is not None:
        data["reason"] = reason
    r = admin.post(f"/admin/users/{bob}/disable", data=data)
    assert r.status_code == 400 and 'role="alert"' in r.get_data(as_text=True)
    assert _status(app, bob) == "active" and audit_rows(app, "admin:user:disable") == []
    # The same ticket still works with a proper reason (a typo is not a lost confirmation).
    ok = admin.post(f"/admin/users/{bob}/disable", data={"csrf_token": token, "ticket": ticket, "reason": REASON})
    assert ok.status_code == 302 and _status(app, bob) == "disabled"


def test_a_confirmation_works_once_only_for_its_action_and_only_for_its_admin(app):
    admin = admin_client(app)
    other = admin_client(app, email="second-admin@example.com")
    bob = create_user(app, email="bob@example.com")
    carol = create_user(app, email="carol@example.com")
    _body, token, ticket = _first_step(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable")
    # Another administrator cannot use it, nor can it be pointed at another account or another action.
    other_token = csrf_token(other.get(f"/admin/users/{bob}").get_data(as_text=True))
    assert other.post(f"/admin/users/{bob}/disable",
                      data={"csrf_token": other_token, "ticket": ticket, "reason": REASON}).status_code == 409
    for url in (f"/admin/users/{carol}/disable", f"/admin/users/{bob}/reset-factors", f"/admin/users/{bob}/enable"):
        assert admin.post(url, data={"csrf_token": token, "ticket": ticket, "reason": REASON}).status_code == 409, url
    assert _status(app, carol) == "active" and _status(app, bob) == "active"
    # Wrong-action use above consumed it: a ticket is taken before it is compared (no probing it for later use).
    _body, token, ticket = _first_step(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable")
    assert admin.post(f"/admin/users/{bob}/disable",
                      data={"csrf_token": token, "ticket": ticket, "reason": REASON}).status_code == 302
    assert confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/enable").status_code == 302
    replay = admin.post(f"/admin/users/{bob}/disable", data={"csrf_token": token, "ticket": ticket, "reason": REASON})
    assert replay.status_code == 409 and "already used" in replay.get_data(as_text=True)
    assert _status(app, bob) == "active"
    for bad in ("../../x", "a" * 65, "tick et"):
        assert admin.post(f"/admin/users/{bob}/disable",
                          data={"csrf_token": token, "ticket": bad, "reason": REASON}).status_code in (400, 409)
    assert _status(app, bob) == "active" and len(audit_rows(app, "admin:user:disable")) == 1


def test_without_csrf_neither_step_is_accepted(app):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    assert admin.post(f"/admin/users/{bob}/disable", data={}).status_code == 400
    _body, _token, ticket = _first_step(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable")
    r = admin.post(f"/admin/users/{bob}/disable", data={"ticket": ticket, "reason": REASON})
    assert r.status_code == 400 and _status(app, bob) == "active"
    for url, data in (("/admin/users/bulk", {"action": "disable", "ids": str(bob)}),
                      (f"/admin/users/{bob}/resend-verification", {}), ("/admin/users/new", {"email": "x@example.com"})):
        assert admin.post(url, data=data).status_code == 400, url


def test_a_stale_reauthentication_stops_the_confirmation(app):
    from authsvc.services import services

    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    _body, token, ticket = _first_step(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable")
    with app.app_context():
        services().clock.advance(16 * 60)
    r = admin.post(f"/admin/users/{bob}/disable", data={"csrf_token": token, "ticket": ticket, "reason": REASON})
    assert r.status_code == 302 and "/mfa/step-up" in r.headers["Location"]
    assert _status(app, bob) == "active"


def test_a_non_admin_posting_to_any_new_action_gets_403(app, client):
    bob = create_user(app, email="bob@example.com")
    create_user(app)
    login(client)
    token = csrf_token(client.get("/account").get_data(as_text=True))
    for url, data in ((f"/admin/users/{bob}/disable", {"ticket": "abc", "reason": REASON}),
                      ("/admin/users/bulk", {"action": "disable", "ids": str(bob)}),
                      ("/admin/users/new", {"email": "new@example.com"}),
                      (f"/admin/users/{bob}/resend-verification", {})):
        assert client.post(url, data=dict(data, csrf_token=token)).status_code == 403, url
    assert client.get("/admin/users/new").status_code == 403
    assert _status(app, bob) == "active"


def test_bulk_refuses_ten_thousand_ids_non_numeric_and_out_of_range_ids(app):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    token = csrf_token(admin.get("/admin/users").get_data(as_text=True))
    for ids in ([str(i) for i in range(1, 10_001)], [str(i) for i in range(1, 102)], [str(bob), "abc"], [str(bob), "²"], [str(bob), "-1"],
                [str(bob), "99999999999999999999"], [], [str(bob), "1 OR 1=1"]):
        r = admin.post("/admin/users/bulk", data={"csrf_token": token, "action": "disable", "ids": ids})
        assert r.status_code in (400, 413), ids[:3]  # 10,000 fields: refused by the form parser's part limit
        assert "Traceback" not in r.get_data(as_text=True)
    r = admin.post("/admin/users/bulk", data={"csrf_token": token, "action": "delete-everyone", "ids": [str(bob)]})
    assert r.status_code == 400
    assert _status(app, bob) == "active"


def test_bulk_leaves_out_administrators_including_oneself_and_audits_each_account(app):
    admin = admin_client(app)
    other_admin = create_user(app, email="admin2@example.com", is_admin=True)
    users = [create_user(app, email=f"u{i}@example.com") for i in range(3)]
    victim = app.test_client()
    login(victim, email="u0@example.com")
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f'name="ids" value="{users[0]}"' in html and f'name="ids" value="{other_admin}"' not in html
    ids = [str(u) for u in users] + [str(other_admin), str(admin.user_id), str(users[0])]
    r = admin.post("/admin/users/bulk", data={"csrf_token": csrf_token(html), "action": "disable", "ids": ids})
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "Disable 3 accounts" in body and "Left out" in body
    assert all(f"u{i}@example.com" in body for i in range(3))
    ticket = ticket_of(body)
    # The ticket is bound to its action: the same ticket under another action is refused and used up.
    assert admin.post("/admin/users/bulk?action=end-sessions", data={
        "csrf_token": csrf_token(body), "ticket": ticket, "reason": REASON}).status_code == 409
    r = admin.post("/admin/users/bulk", data={"csrf_token": csrf_token(html), "action": "disable", "ids": ids})
    body = r.get_data(as_text=True)
    assert 'action="/admin/users/bulk?action=disable"' in body
    r = admin.post("/admin/users/bulk?action=disable", data={"csrf_token": csrf_token(body), "ticket": ticket_of(body),
                                                             "reason": REASON, "ids": [str(other_admin)]})
    assert r.status_code == 302
    assert [_status(app, u) for u in users] == ["disabled"] * 3
    assert _status(app, other_admin) == "active" and _status(app, admin.user_id) == "active"
    assert victim.get("/account").status_code == 302  # sessions ended with the disable
    rows = audit_rows(app, "admin:user:disable")
    assert sorted(ev.subject_id for ev in rows) == sorted(users)
    assert all(json.loads(ev.details)["reason"] == REASON and json.loads(ev.details)["bulk"] for ev in rows)
    # Only administrators selected: nothing to confirm.
    r = admin.post("/admin/users/bulk", data={"csrf_token": csrf_token(body), "action": "end-sessions",
                                              "ids": [str(other_admin)]})
    assert r.status_code == 302 and _status(app, other_admin) == "active"


def test_bulk_end_sessions_signs_every_selected_account_out(app):
    admin = admin_client(app)
    users = [create_user(app, email=f"s{i}@example.com") for i in range(2)]
    clients = []
    for i in range(2):
        c = app.test_client()
        login(c, email=f"s{i}@example.com")
        clients.append(c)
    html = admin.get("/admin/users").get_data(as_text=True)
    r = admin.post("/admin/users/bulk", data={"csrf_token": csrf_token(html), "action": "end-sessions",
                                              "ids": [str(u) for u in users]})
    body = r.get_data(as_text=True)
    r = admin.post("/admin/users/bulk?action=end-sessions", data={"csrf_token": csrf_token(body),
                                                                  "ticket": ticket_of(body), "reason": REASON})
    assert r.status_code == 302
    assert all(c.get("/account").status_code == 302 for c in clients)
    assert [_status(app, u) for u in users] == ["active", "active"]
    assert len(audit_rows(app, "admin:user:sessions_revoke")) == 2


def test_other_admins_stay_protected_before_any_confirmation(app):
    admin = admin_client(app)
    other_admin = create_user(app, email="admin2@example.com", is_admin=True)
    for action in ("disable", "reset-factors"):
        html = admin.get(f"/admin/users/{other_admin}").get_data(as_text=True)
        r = admin.post(f"/admin/users/{other_admin}/{action}", data={"csrf_token": csrf_token(html)})
        assert r.status_code == 403 and 'name="ticket"' not in r.get_data(as_text=True)
    assert _status(app, other_admin) == "active"


def test_create_user_never_lets_the_admin_choose_the_password(app):
    from authsvc.extensions import db
    from authsvc.models import User

    admin = admin_client(app)
    create_user(app, email="bob@example.com")
    page = admin.get("/admin/users/new")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'type="password"' not in html
    for bad in ("not-an-address", "bob@example.com", "BOB@example.com", "a\u202e@example.com", "x" * 300 + "@ex.com",
                ""):
        r = admin.post("/admin/users/new", data={"csrf_token": csrf_token(html), "email": bad})
        assert r.status_code == 400, bad
    r = admin.post("/admin/users/new", data={"csrf_token": csrf_token(html), "email": "New.Person@Example.com",
                                             "password": "admin-chosen password 123"})
    assert r.status_code == 302
    with app.app_context():
        user = db.session.execute(db.select(User).where(User.email == "new.person@example.com")).scalar_one()
        assert user.password_hash is None and user.email_verified_at is None
        uid = user.id
    [ev] = audit_rows(app, "admin:user:create")
    assert (ev.actor_id, ev.subject_id) == (admin.user_id, uid)
    assert login(app.test_client(), email="new.person@example.com", password="admin-chosen password 123"
                 ).status_code != 302
    path = outbox_link(app, "new.person@example.com", "reset").split("localhost:5000", 1)[1]
    person = app.test_client()
    assert form_post(person, path, {"new_password": "my own passphrase, nobody else's"}).status_code == 302
    assert login(person, email="new.person@example.com", password="my own passphrase, nobody else's"
                 ).status_code == 302
    with app.app_context():
        assert db.session.get(User, uid).email_verified_at is not None  # the link confirmed the address


def test_resend_verification_is_rate_limited_and_audited(app):
    from authsvc.services import services

    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com", verified=False)
    with app.app_context():
        before = len(services().outbox.messages(to="bob@example.com"))
    html = admin.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert "Resend the verification link" in html
    r = admin.post(f"/admin/users/{bob}/resend-verification", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 302
    again = admin.post(f"/admin/users/{bob}/resend-verification", data={"csrf_token": csrf_token(html)})
    assert again.status_code == 429
    with app.app_context():
        assert len(services().outbox.messages(to="bob@example.com")) == before + 1
    rows = audit_rows(app, "admin:user:verification_resend")
    assert [(ev.outcome, ev.reason) for ev in rows] == [("success", None), ("failure", "rate_limited")]
    assert outbox_link(app, "bob@example.com", "verify")
    carol = create_user(app, email="carol@example.com")  # confirmed: nothing to resend
    html = admin.get(f"/admin/users/{carol}").get_data(as_text=True)
    assert "Resend the verification link" not in html
    admin.post(f"/admin/users/{carol}/resend-verification", data={"csrf_token": csrf_token(html)})
    assert len(audit_rows(app, "admin:user:verification_resend")) == 2


def test_resend_verification_refuses_a_disabled_account(app):
    """Its link would be refused anyway: no mail, a 409 and an audited refusal, and no button offering it."""
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    admin = admin_client(app)
    dan = create_user(app, email="dan@example.com", verified=False)
    with app.app_context():
        db.session.get(User, dan).status = "disabled"
        db.session.commit()
        before = len(services().outbox.messages(to="dan@example.com"))
    html = admin.get(f"/admin/users/{dan}").get_data(as_text=True)
    assert "Resend the verification link" not in html
    r = admin.post(f"/admin/users/{dan}/resend-verification", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 409
    with app.app_context():
        assert len(services().outbox.messages(to="dan@example.com")) == before
    assert [(ev.outcome, ev.reason) for ev in audit_rows(app, "admin:user:verification_resend")] == [
        ("failure", "disabled")]


# --- the other destructive actions --------------------------------------------------------------------------------------
def test_unblock_is_confirmed_and_acts_on_the_entity_of_its_ticket(make_app, redis_client):
    app = make_app(throttle_pair_limit=3)
    admin = admin_client(app)
    redis_client.set("th:{ip:203.0.113.9}:f", 50, ex=600)
    body, token, ticket = _first_step(admin, "/admin/attacks", "/admin/attacks/unblock", {"target": "ip:203.0.113.9"})
    assert "203.0.113.9" in body and redis_client.exists("th:{ip:203.0.113.9}:f")
    r = admin.post("/admin/attacks/unblock", data={"csrf_token": token, "ticket": ticket, "reason": REASON,
                                                   "target": "ip:198.51.100.1"})
    assert r.status_code == 302 and not redis_client.exists("th:{ip:203.0.113.9}:f")
    [ev] = audit_rows(app, "admin:throttle:unblock")
    assert json.loads(ev.details)["entity"] == "203.0.113.9" and json.loads(ev.details)["reason"] == REASON


# --- e-mails next to ids and hashes -------------------------------------------------------------------------------------
def test_audit_log_and_attacks_page_show_the_email_next_to_ids_and_account_hashes(make_app):
    app = make_app(throttle_pair_limit=3, account_lockout_threshold=3)
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    assert confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/end-sessions").status_code == 302
    html = admin.get("/admin/audit?tag=admin:user").get_data(as_text=True)
    assert f"bob@example.com</a> <span class=\"muted\">#{bob}</span>" in html
    assert f"root@example.com</a> <span class=\"muted\">#{admin.user_id}</span>" in html
    assert REASON in html  # the reason, in the event's details
    c = app.test_client()
    for _ in range(5):
        login(c, email="bob@example.com", password="wrong password, many times")
        login(c, email="ghost@example.com", password="wrong password, many times")
    html = admin.get("/admin/attacks").get_data(as_text=True)
    assert f"bob@example.com #{bob}" in html
    assert "ghost@example.com" not in html  # no account: it stays a hash


def test_the_happy_path_reason_lands_in_the_audit_event(app):
    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/disable",
                       reason="  Fraud report\n#881,   confirmed by phone  ")
    assert r.status_code == 302
    [ev] = audit_rows(app, "admin:user:disable")
    assert json.loads(ev.details)["reason"] == "Fraud report #881, confirmed by phone"
    assert login(app.test_client(), email="bob@example.com", password=PASSWORD).status_code == 401


# --- keyset paging of the other lists -----------------------------------------------------------------------------------
def test_outbox_and_oauth_clients_are_keyset_paged_and_refuse_a_hostile_cursor(app):
    import re

    from authsvc.services import services

    admin = admin_client(app)
    with app.app_context():
        for i in range(56):
            services().mailer.send(f"page{i}@example.com", f"Paging test {i}", "body")
        clients = app.extensions["authsvc.oauth"].clients
        for i in range(52):
            clients.create(name=f"App {i:02d}", client_type="public", redirect_uris=["https://app.example/cb"],
                           grant_types=["authorization_code"], scopes=["openid"])
    seen = set()
    html = admin.get("/admin/outbox").get_data(as_text=True)
    first = set(re.findall(r"Paging test (\d+)", html))
    assert len(first) <= 50 and 'rel="next"' in html
    cursor = re.search(r'href="/admin/outbox\?before=([^"]+)"', html).group(1)
    older = admin.get(f"/admin/outbox?before={cursor}").get_data(as_text=True)
    second = set(re.findall(r"Paging test (\d+)", older))
    seen = first | second
    assert not first & second and {str(i) for i in range(56)} <= seen
    for bad in ("../../etc/passwd", "x" * 300, "' OR 1=1", "%00"):
        assert admin.get("/admin/outbox", query_string={"before": bad}).status_code == 400, bad

    html = admin.get("/admin/oauth").get_data(as_text=True)
    page1 = re.findall(r"<h2>(App \d\d) ", html)
    assert len(page1) == 50 and page1 == sorted(page1)
    after = re.search(r'href="/admin/oauth\?after=([^"]+)"', html).group(1)
    page2 = re.findall(r"<h2>(App \d\d) ", admin.get(f"/admin/oauth?after={after}").get_data(as_text=True))
    assert page2 == ["App 50", "App 51"]
    for bad in ("a" * 65, "x' OR '1'='1", "../x"):
        assert admin.get("/admin/oauth", query_string={"after": bad}).status_code == 400, bad
