"""SSF 1.0 transmitter end to end: discovery, stream management authorised by the receiver's client credentials,
CAEP/RISC events mapped from audited actions, delivered by push (to an independent receiver that verifies every SET
with joserfc against our JWKS) and by poll; the attacker's requests first. Real SQL, real Redis, real sockets."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from authsvc.models import OutboxItem
from authsvc.signals.ssf import CAEP, POLL, PUSH, RISC, SSF
from tests.conftest import PASSWORD, create_user
from tests.functional.ssf_helpers import Receiver, bearer, cc_token, receiver_client

ALL = [CAEP + "session-revoked", CAEP + "credential-change", CAEP + "assurance-level-change",
       CAEP + "token-claims-change", RISC + "account-disabled", RISC + "account-enabled", RISC + "account-purged",
       RISC + "credential-compromise", RISC + "account-credential-change-required", RISC + "identifier-changed"]


@pytest.fixture
def ssf_app(make_app):
    return make_app(signals_allow_insecure_push=True, signals_push_timeout=1.0, signals_lease_seconds=10)


def _jwks(client) -> dict:
    return client.get("/oauth2/jwks").get_json()


def _issuer(client) -> str:
    return client.get("/.well-known/ssf-configuration").get_json()["issuer"]


def _push_stream(client, tok, url, events=ALL, **delivery):
    r = client.post("/ssf/stream", json={"events_requested": events,
                                         "delivery": {"method": PUSH, "endpoint_url": url, **delivery}},
                    headers=bearer(tok))
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def _add(client, tok, stream_id, subject):
    r = client.post("/ssf/subjects:add", json={"stream_id": stream_id, "subject": subject}, headers=bearer(tok))
    assert r.status_code == 200, r.get_data(as_text=True)


def _drain(app):
    from authsvc.signals import signals

    with app.app_context():
        total = 0
        for _ in range(20):
            r = signals(app).worker.run_once()
            total += r.delivered
            if r.claimed == 0:
                break
        return total


def _uid(app, email="alice@example.com"):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        return db.session.execute(select(User.id).where(User.email == email)).scalar_one()


# --- attacker's tests first ---------------------------------------------------------------------------------------------
def test_management_needs_the_receivers_own_client_credentials_token(ssf_app):
    client = ssf_app.test_client()
    cid, secret, tok = receiver_client(ssf_app, client)
    assert client.get("/ssf/stream").status_code == 401
    r = client.get("/ssf/stream", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/ssf/stream", headers={"Authorization": "Basic " + "x" * 10}).status_code == 401
    # A user's access token for the same client (authorization code flow) is not the receiver's credential.
    from tests.functional.oauth_helpers import get_code, redeem

    code, verifier = get_code(client, cid)
    user_tok = redeem(client, cid, secret, code, verifier).get_json()["access_token"]
    assert client.get("/ssf/stream", headers=bearer(user_tok)).status_code == 401
    assert client.get("/ssf/stream", headers=bearer(tok)).get_json() == []  # SSF §8.1.1.2: empty list


def test_another_receivers_stream_ids_answer_404_like_made_up_ones(ssf_app):
    client = ssf_app.test_client()
    _, _, tok_a = receiver_client(ssf_app, client)
    _, _, tok_b = receiver_client(ssf_app, ssf_app.test_client(), email="bob@example.com")
    a = client.post("/ssf/stream", json={"events_requested": ALL}, headers=bearer(tok_a)).get_json()
    sid = a["stream_id"]
    for method, url, body in (("get", f"/ssf/stream?stream_id={sid}", None),
                              ("patch", "/ssf/stream", {"stream_id": sid, "description": "mine now"}),
                              ("put", "/ssf/stream", {"stream_id": sid, "events_requested": []}),
                              ("delete", f"/ssf/stream?stream_id={sid}", None),
                              ("get", f"/ssf/status?stream_id={sid}", None),
                              ("post", "/ssf/status", {"stream_id": sid, "status": "disabled"}),
                              ("post", "/ssf/verify", {"stream_id": sid}),
                              ("post", "/ssf/subjects:add", {"stream_id": sid, "subject": {"format": "email",
                                                                                          "email": "bob@example.com"}}),
                              ("post", f"/ssf/poll/{sid}", {"ack": []})):
        theirs = getattr(client, method)(url, json=body, headers=bearer(tok_b))
        made_up = getattr(client, method)(url.replace(sid, "made-up"), json=body and json.loads(
            json.dumps(body).replace(sid, "made-up")), headers=bearer(tok_b))
        assert theirs.status_code == made_up.status_code == 404, (method, url, theirs.get_data(as_text=True))
        assert theirs.get_json() == made_up.get_json()
    # B's list does not show A's stream; A's stream is untouched.
    assert client.get("/ssf/stream", headers=bearer(tok_b)).get_json() == []
    again = client.get(f"/ssf/stream?stream_id={sid}", headers=bearer(tok_a)).get_json()
    assert again == a
    assert client.get(f"/ssf/status?stream_id={sid}", headers=bearer(tok_a)).get_json()["status"] == "enabled"


@pytest.mark.parametrize("body,status", [
    ("not json", 400), ([1, 2], 400), ({"events_requested": "all"}, 400), ({"events_requested": [{"a": 1}]}, 400),
    ({"events_requested": ["x" * 300]}, 400), ({"events_requested": ["e"] * 65}, 400),
    ({"delivery": "push"}, 400), ({"delivery": {"method": "urn:other"}}, 400),
    ({"delivery": {"method": PUSH}}, 400), ({"delivery": {"method": PUSH, "endpoint_url": ["x"]}}, 400),
    ({"delivery": {"method": PUSH, "endpoint_url": "https://a.example/\u212a"}}, 400),
    ({"delivery": {"method": PUSH, "endpoint_url": "https://user:pw@a.example/x"}}, 400),
    ({"delivery": {"method": PUSH, "endpoint_url": "javascript:alert(1)"}}, 400),
    ({"delivery": {"method": PUSH, "endpoint_url": "https://a.example/" + "x" * 3000}}, 400),
    ({"delivery": {"method": POLL, "endpoint_url": "https://attacker.example/poll"}}, 400),
    ({"delivery": {"method": PUSH, "endpoint_url": "https://a.example/x", "authorization_header": "a\r\nX: y"}}, 400),
    ({"iss": "https://evil.example"}, 400), ({"aud": "someone-else"}, 400), ({"description": {"a": 1}}, 400),
    ({"events_requested": ALL, "x": {"y": {"z": [[[[[[[]]]]]]]}}}, 201),  # unknown members are ignored
])
def test_garbage_stream_configuration_is_a_clear_400(ssf_app, body, status):
    client = ssf_app.test_client()
    _, _, tok = receiver_client(ssf_app, client)
    data = body if isinstance(body, str) else json.dumps(body)
    r = client.post("/ssf/stream", data=data, content_type="application/json", headers=bearer(tok))
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.is_json and ("error" in r.get_json() if status == 400 else True)


def test_oversized_bodies_are_refused_with_413(ssf_app):
    client = ssf_app.test_client()
    _, _, tok = receiver_client(ssf_app, client)
    r = client.post("/ssf/stream", data=json.dumps({"description": "x" * 70_000}), content_type="application/json",
                    headers=bearer(tok))
    assert r.status_code == 413 and r.get_json()["error"] == "request_too_large"


def test_push_endpoints_must_be_https_on_a_public_address(make_app):
    app = make_app()  # the production default: no insecure push
    client = app.test_client()
    _, _, tok = receiver_client(app, client)
    for url in ("http://receiver.example/events", "https://127.0.0.1/events", "https://10.1.2.3/x",
                "https://[::1]/x", "https://169.254.169.254/latest/meta-data", "https://localhost/x",
                "https://0.0.0.0/x", "https://no-such-host.invalid/x"):
        r = client.post("/ssf/stream", json={"delivery": {"method": PUSH, "endpoint_url": url}}, headers=bearer(tok))
        assert r.status_code == 400, (url, r.get_data(as_text=True))


def test_streams_per_receiver_are_bounded_409(make_app):
    app = make_app(signals_max_streams_per_client=2)
    client = app.test_client()
    _, _, tok = receiver_client(app, client)
    codes = [client.post("/ssf/stream", json={}, headers=bearer(tok)).status_code for _ in range(3)]
    assert codes == [201, 201, 409]


def test_subjects_a_user_never_consented_to_are_silently_ignored(ssf_app):
    """Adding bob (an account that never used this receiver) answers 200 like anyone else, and no event about him
    is ever sent: the endpoint neither enumerates accounts nor subscribes to strangers."""
    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    create_user(ssf_app, email="bob@example.com")
    stream = _push_stream(client, tok, "http://127.0.0.1:9/never")
    sid = stream["stream_id"]
    for subject in ({"format": "email", "email": "bob@example.com"}, {"format": "email", "email": "nobody@x.example"}):
        r = client.post("/ssf/subjects:add", json={"stream_id": sid, "subject": subject}, headers=bearer(tok))
        assert r.status_code == 200 and r.get_json() == {}
    for bad in ({"format": "phone_number", "phone_number": "+1"}, "bob", {"format": "email", "email": ["x"]},
                {"format": "email"}):
        r = client.post("/ssf/subjects:add", json={"stream_id": sid, "subject": bad}, headers=bearer(tok))
        assert r.status_code == 400
    from authsvc.services import services

    with ssf_app.app_context():
        services().audit.record("admin:user:disable", "success", subject_id=_uid(ssf_app, "bob@example.com"))
        from authsvc.extensions import db

        assert db.session.execute(select(OutboxItem)).first() is None


def test_poll_acks_only_touch_the_callers_pending_sets_and_replays_are_no_ops(ssf_app):
    from authsvc.services import services

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    s = client.post("/ssf/stream", json={"events_requested": ALL}, headers=bearer(tok)).get_json()
    sid = s["stream_id"]
    assert s["delivery"] == {"method": POLL, "endpoint_url": _issuer(client) + f"/ssf/poll/{sid}"}
    _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
    with ssf_app.app_context():
        services().audit.record("admin:user:disable", "success", subject_id=_uid(ssf_app))
        services().audit.record("admin:user:enable", "success", subject_id=_uid(ssf_app))
    first = client.post(f"/ssf/poll/{sid}", json={"maxEvents": 1}, headers=bearer(tok)).get_json()
    assert len(first["sets"]) == 1 and first["moreAvailable"] is True
    jti1 = next(iter(first["sets"]))
    second = client.post(f"/ssf/poll/{sid}", json={"ack": [jti1], "maxEvents": 10}, headers=bearer(tok)).get_json()
    assert jti1 not in second["sets"] and len(second["sets"]) == 1 and "moreAvailable" not in second
    jti2 = next(iter(second["sets"]))
    # Another receiver acking our jti (it learned it somehow) changes nothing; nor does a replayed ack.
    _, _, tok_b = receiver_client(ssf_app, ssf_app.test_client(), email="bob@example.com")
    sb = client.post("/ssf/stream", json={}, headers=bearer(tok_b)).get_json()["stream_id"]
    client.post(f"/ssf/poll/{sb}", json={"ack": [jti2, jti1]}, headers=bearer(tok_b))
    third = client.post(f"/ssf/poll/{sid}", json={"ack": [jti1]}, headers=bearer(tok)).get_json()
    assert list(third["sets"]) == [jti2]  # still pending: B's ack did not count, our replay of jti1 did nothing
    for bad in ({"ack": "x"}, {"ack": [1]}, {"maxEvents": -1}, {"maxEvents": 10**9}, {"maxEvents": True},
                {"setErrs": []}, {"returnImmediately": "no"}):
        assert client.post(f"/ssf/poll/{sid}", json=bad, headers=bearer(tok)).status_code == 400
    fourth = client.post(f"/ssf/poll/{sid}", json={"ack": [jti2], "maxEvents": 0}, headers=bearer(tok)).get_json()
    assert fourth == {"sets": {}}
    assert client.post(f"/ssf/poll/{sid}", json={}, headers=bearer(tok)).get_json() == {"sets": {}}


def test_a_hanging_receiver_times_out_and_is_retried(ssf_app):
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    rx = Receiver(_jwks(client), _issuer(client), cid, hang_first=3.0)  # push timeout is 1 s
    try:
        sid = _push_stream(client, tok, rx.url)["stream_id"]
        _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
        with ssf_app.app_context():
            services().audit.record("admin:user:disable", "success", subject_id=_uid(ssf_app))
            r = signals(ssf_app).worker.run_once()
            assert r.retried == 1
            row = db.session.execute(select(OutboxItem)).scalar_one()
            assert "Timeout" in row.last_error and row.delivered_at is None
            services().clock.advance(5)
            assert signals(ssf_app).worker.run_once().delivered == 1
        assert rx.wait(1) and rx.types() == [RISC + "account-disabled"]
        assert len(rx.arrivals) == 2 and len(set(rx.arrivals)) == 1  # the same jti twice on the wire, one event
    finally:
        rx.stop()


def test_a_receiver_400_gives_up_and_5xx_retries(ssf_app):
    from authsvc.extensions import db
    from authsvc.services import services
    from authsvc.signals import signals

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    rx = Receiver(_jwks(client), _issuer(client), "someone-else")  # refuses our aud with 400 invalid_request
    try:
        sid = _push_stream(client, tok, rx.url)["stream_id"]
        _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
        with ssf_app.app_context():
            services().audit.record("admin:user:enable", "success", subject_id=_uid(ssf_app))
            assert signals(ssf_app).worker.run_once().failed == 1
            row = db.session.execute(select(OutboxItem)).scalar_one()
            assert row.failed_at is not None and "invalid_request" in row.last_error
        rx.audience, rx.status = cid, 503
        with ssf_app.app_context():
            services().audit.record("admin:user:enable", "success", subject_id=_uid(ssf_app))
            assert signals(ssf_app).worker.run_once().retried == 1
    finally:
        rx.stop()


# --- the happy paths ----------------------------------------------------------------------------------------------------
def test_discovery_document(ssf_app):
    client = ssf_app.test_client()
    r = client.get("/.well-known/ssf-configuration")
    assert r.status_code == 200 and r.mimetype == "application/json"
    d = r.get_json()
    iss = d["issuer"]
    assert d["spec_version"] == "1_0" and d["jwks_uri"] == iss + "/oauth2/jwks"
    assert set(d["delivery_methods_supported"]) == {PUSH, POLL}
    for key in ("configuration_endpoint", "status_endpoint", "add_subject_endpoint", "remove_subject_endpoint",
                "verification_endpoint"):
        assert d[key].startswith(iss + "/ssf/")
    assert d["default_subjects"] == "NONE"


def test_stream_lifecycle_read_update_replace_status_delete(ssf_app):
    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    created = _push_stream(client, tok, "http://127.0.0.1:9/x", events=[CAEP + "session-revoked", "urn:unknown"],
                           authorization_header="Bearer receiver-secret")
    sid = created["stream_id"]
    assert created["iss"] == _issuer(client) and created["aud"] == cid
    assert created["events_delivered"] == [CAEP + "session-revoked"]  # unknown requested types ignored
    assert "authorization_header" not in json.dumps(created)  # the receiver's credential is never echoed
    r = client.patch("/ssf/stream", json={"stream_id": sid, "description": "prod"}, headers=bearer(tok))
    assert r.status_code == 200 and r.get_json()["description"] == "prod"
    assert r.get_json()["events_requested"] == [CAEP + "session-revoked", "urn:unknown"]  # PATCH keeps the rest
    r = client.patch("/ssf/stream", json={"stream_id": sid, "events_delivered": []}, headers=bearer(tok))
    assert r.status_code == 400  # a Transmitter-Supplied property that does not match
    r = client.put("/ssf/stream", json={"stream_id": sid, "events_requested": ALL}, headers=bearer(tok))
    assert r.status_code == 200 and r.get_json()["delivery"]["method"] == POLL  # PUT: missing delivery → poll
    assert "description" not in r.get_json() and r.get_json()["events_delivered"] == sorted(ALL)
    r = client.post("/ssf/status", json={"stream_id": sid, "status": "paused", "reason": "maintenance"},
                    headers=bearer(tok))
    assert r.get_json() == {"stream_id": sid, "status": "paused", "reason": "maintenance"}
    assert client.post("/ssf/status", json={"stream_id": sid, "status": "off"}, headers=bearer(tok)).status_code == 400
    assert client.delete(f"/ssf/stream?stream_id={sid}", headers=bearer(tok)).status_code == 204
    assert client.get(f"/ssf/stream?stream_id={sid}", headers=bearer(tok)).status_code == 404
    assert client.delete("/ssf/stream", headers=bearer(tok)).status_code == 404


def test_every_trigger_reaches_an_independent_receiver_over_push(ssf_app):
    """Each audited action → the right CAEP/RISC event, as a SET the receiver verifies with our published JWKS."""
    from authsvc.accounts.login import RequestContext
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    rx = Receiver(_jwks(client), _issuer(client), cid, auth="Bearer receiver-secret")
    try:
        stream = _push_stream(client, tok, rx.url, authorization_header="Bearer receiver-secret")
        _add(client, tok, stream["stream_id"], {"format": "email", "email": "alice@example.com"})
        uid = _uid(ssf_app)
        api = ssf_app.test_client()
        # Real flows: an API login then logout; a password change; the admin CLI disabling and enabling.
        session_tok = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}) \
            .get_json()["session_token"]
        assert api.post("/api/v1/logout", headers=bearer(session_tok)).status_code == 204
        with ssf_app.app_context():
            user = db.session.get(User, uid)
            services().accounts.change_password(user, PASSWORD, PASSWORD + " 2", RequestContext("127.0.0.1", "t"))
        runner = ssf_app.test_cli_runner()
        assert runner.invoke(args=["admin", "disable", "--email", "alice@example.com"]).exit_code == 0
        assert runner.invoke(args=["admin", "enable", "--email", "alice@example.com"]).exit_code == 0
        # The other mapped tags, recorded exactly as their flows record them.
        with ssf_app.app_context():
            audit = services().audit
            for tag in ("mfa:totp:enrol", "mfa:webauthn:remove", "mfa:stepup:success", "account:email:verified",
                        "account:password:breached", "admin:user:password_change_required",
                        "account:compromise:reported", "session:drift:end"):
                audit.record(tag, "success", subject_id=uid)
            audit.record("account:email:change", "success", subject_id=uid, details={"new_value": "al@example.com"})
            audit.record("account:login:failure", "failure", subject_id=uid)  # maps to nothing
        expected = [CAEP + "session-revoked", CAEP + "credential-change", RISC + "account-disabled",
                    RISC + "account-enabled", CAEP + "credential-change", CAEP + "credential-change",
                    CAEP + "assurance-level-change", CAEP + "token-claims-change", RISC + "credential-compromise",
                    RISC + "account-credential-change-required", CAEP + "session-revoked",
                    RISC + "account-credential-change-required", CAEP + "session-revoked",
                    RISC + "identifier-changed"]
        assert _drain(ssf_app) == len(expected)
        assert rx.wait(len(expected)), rx.errors
        assert rx.errors == []
        assert sorted(rx.types()) == sorted(expected)
        by_type = {}
        for c in rx.events.values():
            assert c["sub_id"] == {"format": "email", "email": "alice@example.com"}
            by_type.setdefault(next(iter(c["events"])), []).append(c["events"][next(iter(c["events"]))])
        changes = sorted((e["credential_type"], e["change_type"]) for e in by_type[CAEP + "credential-change"])
        assert changes == [("app", "create"), ("fido2-roaming", "delete"), ("password", "update")]
        assert by_type[CAEP + "assurance-level-change"][0]["current_level"] == "nist-aal2"
        assert by_type[CAEP + "token-claims-change"][0]["claims"] == {"email_verified": True}
        assert by_type[RISC + "credential-compromise"][0]["credential_type"] == "password"
        assert by_type[RISC + "identifier-changed"][0]["new-value"] == "al@example.com"
        assert all(isinstance(e["event_timestamp"], int) for events in by_type.values() for e in events)
        assert by_type[RISC + "account-disabled"][0]["initiating_entity"] == "admin"
    finally:
        rx.stop()


def test_iss_sub_subjects_and_account_purged_forgets_the_subject(ssf_app):
    from authsvc.extensions import db
    from authsvc.models import SsfSubject, User
    from authsvc.services import services

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    with ssf_app.app_context():
        sub = db.session.execute(select(User.sub).where(User.email == "alice@example.com")).scalar_one()
    s = client.post("/ssf/stream", json={"events_requested": ALL}, headers=bearer(tok)).get_json()["stream_id"]
    subject = {"format": "iss_sub", "iss": _issuer(client), "sub": sub}
    _add(client, tok, s, subject)
    with ssf_app.app_context():
        services().audit.record("account:delete:success", "success", subject_id=_uid(ssf_app))
        assert db.session.execute(select(SsfSubject)).first() is None  # the subject row went with the purge
    sets = client.post(f"/ssf/poll/{s}", json={}, headers=bearer(tok)).get_json()["sets"]
    keys = KeySet.import_key_set(_jwks(client))
    (raw,) = sets.values()
    tok_ = jwt.decode(raw, keys)
    assert tok_.header["typ"] == "secevent+jwt"
    assert tok_.claims["sub_id"] == subject and list(tok_.claims["events"]) == [RISC + "account-purged"]


def test_verification_event_echoes_state_and_is_rate_limited(ssf_app):
    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    rx = Receiver(_jwks(client), _issuer(client), cid)
    try:
        sid = _push_stream(client, tok, rx.url)["stream_id"]
        assert client.post("/ssf/verify", json={"stream_id": sid, "state": "abc"}, headers=bearer(tok)) \
            .status_code == 204
        assert client.post("/ssf/verify", json={"stream_id": sid}, headers=bearer(tok)).status_code == 429
        assert client.post("/ssf/verify", json={"stream_id": sid, "state": 5}, headers=bearer(tok)).status_code == 400
        _drain(ssf_app)
        assert rx.wait(1)
        (claims,) = rx.events.values()
        assert claims["events"] == {SSF + "verification": {"state": "abc"}}
        assert claims["sub_id"] == {"format": "opaque", "id": sid}
    finally:
        rx.stop()


def test_paused_stream_holds_events_and_disabled_drops_them(ssf_app):
    from authsvc.services import services

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    rx = Receiver(_jwks(client), _issuer(client), cid)
    try:
        sid = _push_stream(client, tok, rx.url)["stream_id"]
        _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
        client.post("/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=bearer(tok))
        with ssf_app.app_context():
            services().audit.record("admin:user:disable", "success", subject_id=_uid(ssf_app))
            services().audit.record("admin:user:enable", "success", subject_id=_uid(ssf_app))
        assert _drain(ssf_app) == 0 and rx.arrivals == []
        client.post("/ssf/status", json={"stream_id": sid, "status": "enabled"}, headers=bearer(tok))
        with ssf_app.app_context():
            services().clock.advance(6)
        assert _drain(ssf_app) == 2 and rx.wait(2)
        client.post("/ssf/status", json={"stream_id": sid, "status": "disabled"}, headers=bearer(tok))
        with ssf_app.app_context():
            services().audit.record("admin:user:disable", "success", subject_id=_uid(ssf_app))
        assert _drain(ssf_app) == 0 and len(rx.events) == 2
    finally:
        rx.stop()


def test_every_trigger_reaches_a_poll_receiver(ssf_app):
    from authsvc.services import services

    client = ssf_app.test_client()
    cid, _, tok = receiver_client(ssf_app, client)
    sid = client.post("/ssf/stream", json={"events_requested": ALL}, headers=bearer(tok)).get_json()["stream_id"]
    _add(client, tok, sid, {"format": "email", "email": "alice@example.com"})
    tags = ["account:logout:success", "account:password:change", "mfa:stepup:success", "account:email:verified",
            "admin:user:disable", "admin:user:enable", "account:password:breached",
            "admin:user:password_change_required", "account:email:change"]
    with ssf_app.app_context():
        for tag in tags:
            services().audit.record(tag, "success", subject_id=_uid(ssf_app))
    keys = KeySet.import_key_set(_jwks(client))
    got, ack = {}, []
    for _ in range(5):
        r = client.post(f"/ssf/poll/{sid}", json={"ack": ack, "maxEvents": 4}, headers=bearer(tok)).get_json()
        ack = []
        for jti, raw in r["sets"].items():
            t = jwt.decode(raw, keys)
            assert t.header["typ"] == "secevent+jwt" and t.claims["jti"] == jti and t.claims["aud"] == cid
            got[jti] = next(iter(t.claims["events"]))
            ack.append(jti)
        if not r["sets"]:
            break
    assert sorted(got.values()) == sorted([CAEP + "session-revoked", CAEP + "credential-change",
                                           CAEP + "assurance-level-change", CAEP + "token-claims-change",
                                           RISC + "account-disabled", RISC + "account-enabled",
                                           RISC + "credential-compromise",
                                           RISC + "account-credential-change-required", RISC + "identifier-changed"])
