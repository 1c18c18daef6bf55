"""The JSON API: the same account actions, bearer tokens, and clear 4xx for bad input."""

import pytest

from tests.conftest import PASSWORD, create_user, outbox_link


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def api_login(client, email="alice@example.com", password=PASSWORD):
    r = client.post("/api/v1/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.json
    return r.json["session_token"]


def test_full_flow_over_the_api(app, client):
    r = client.post("/api/v1/register", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 202
    assert client.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).status_code == 403
    token = outbox_link(app, "alice@example.com", "verify").rsplit("/", 1)[1]
    # No cookie in the API: confirming needs the registration password (pre-hijack, issue #19).
    r = client.post("/api/v1/email/verify", json={"token": token})
    assert r.status_code == 400 and "password" in r.json["message"]
    r = client.post("/api/v1/email/verify", json={"token": token, "password": "not the registration password"})
    assert r.status_code == 400 and r.json["error"] == "password_required"
    assert client.post("/api/v1/email/verify", json={"token": token, "password": PASSWORD}).status_code == 204
    assert client.post("/api/v1/email/verify", json={"token": token, "password": PASSWORD}).status_code == 400
    t1, t2 = api_login(client), api_login(client)
    who = client.get("/api/v1/session", headers=bearer(t1))
    assert who.status_code == 200 and who.json["email"] == "alice@example.com" and who.json["session"]["current"]
    sessions = client.get("/api/v1/sessions", headers=bearer(t1)).json
    assert len(sessions) == 2
    other = [s["id"] for s in sessions if not s["current"]][0]
    assert client.delete(f"/api/v1/sessions/{other}", headers=bearer(t1)).status_code == 204
    assert client.get("/api/v1/session", headers=bearer(t2)).status_code == 401
    assert client.delete(f"/api/v1/sessions/{other}", headers=bearer(t1)).status_code == 404
    r = client.post("/api/v1/password/change", headers=bearer(t1),
                    json={"current_password": PASSWORD, "new_password": "another long passphrase here"})
    assert r.status_code == 200
    assert client.get("/api/v1/session", headers=bearer(t1)).status_code == 401  # re-issued on change
    t3 = r.json["session_token"]
    assert client.post("/api/v1/logout", headers=bearer(t3)).status_code == 204
    assert client.get("/api/v1/session", headers=bearer(t3)).status_code == 401


def test_reset_over_the_api(app, client):
    create_user(app)
    assert client.post("/api/v1/password/reset", json={"email": "alice@example.com"}).status_code == 202
    assert client.post("/api/v1/password/reset", json={"email": "ghost@example.com"}).status_code == 202
    token = outbox_link(app, "alice@example.com", "reset").rsplit("/", 1)[1]
    r = client.post("/api/v1/password/reset/confirm", json={"token": token, "new_password": "short"})
    assert r.status_code == 422 and r.json["violations"] == ["too_short"]
    r = client.post("/api/v1/password/reset/confirm", json={"token": token, "new_password": "a fine new passphrase"})
    assert r.status_code == 204
    r = client.post("/api/v1/password/reset/confirm", json={"token": token, "new_password": "a fine new passphrase"})
    assert r.status_code == 400


def test_cookies_are_ignored_by_the_api(app, client):
    create_user(app)
    from tests.functional.helpers import login

    login(client)  # the browser cookie is set…
    assert client.get("/api/v1/session").status_code == 401  # …but the API wants a bearer token (no CSRF)


@pytest.mark.parametrize("kwargs, status, needle", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ({"data": "email=a", "content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
    ({"json": {"email": "a@b.co"}}, 400, "'password' is a required property"),
    ({"json": {"email": "a@b.co", "password": 5}}, 400, "password: must be a string"),
    ({"json": {"email": "a@b.co", "password": "x" * 1025}}, 400, "password: is longer than 1024"),
    ({"json": {"email": "a" * 300 + "@b.co", "password": "x"}}, 400, "email: is longer than 254"),
    ({"json": {"email": "a@b.co", "password": "x", "admin": True}}, 400, "unexpected field"),
    ({"json": ["email", "password"]}, 400, "must be a object"),
    ({"data": "{\"email\": \"" + "a" * 70000 + "\"}", "content_type": "application/json"}, 413, "too large"),
])
def test_bad_input_gets_a_clear_4xx(client, kwargs, status, needle):
    r = client.post("/api/v1/login", **kwargs)
    assert r.status_code == status
    assert r.is_json and needle in r.json["message"]
    assert "Traceback" not in r.get_data(as_text=True)


def test_unknown_route_and_method_are_json_in_the_api(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json["error"] == "not_found"
    r = client.get("/api/v1/login")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]


def test_html_errors_for_pages(client):
    r = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and b"<html" in r.data
    r = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json["error"] == "not_found"


def test_openapi_lists_every_api_route(app, client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.openapi":
            path = rule.rule.replace("<session_id>", "{session_id}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def test_session_check_fast_path_matches_the_flask_route(app, client):
    """GET /api/v1/session is served by a lean WSGI path; it must answer exactly like the Flask view."""
    from authsvc.api import whoami

    create_user(app)
    token = api_login(client)
    fast = client.get("/api/v1/session", headers=bearer(token))
    same_client = {**bearer(token), "User-Agent": fast.request.headers.get("User-Agent", "")}  # drift: same browser
    with app.test_request_context("/api/v1/session", headers=same_client):
        reference = whoami()
    ref_body = dict(reference)
    fast_body = dict(fast.json)
    for body in (ref_body, fast_body):  # last_seen_at moves with each check
        body["session"] = {k: v for k, v in body["session"].items() if k != "last_seen_at"}
    assert fast.status_code == 200 and fast_body == ref_body
    from authsvc.web.http import SECURITY_HEADERS

    for header in ("Cache-Control", *(name for name, _ in SECURITY_HEADERS)):
        assert fast.headers[header] == client.get("/healthz").headers[header], header
    bad = client.get("/api/v1/session", headers=bearer("nope"))
    assert bad.status_code == 401 and bad.json["error"] == "unauthorized"
    assert client.head("/api/v1/session", headers=bearer(token)).status_code == 200  # HEAD goes through Flask


# --- hostile JSON: no 500 for any JSON body endpoint (issue #12 item 8) -------------------------------------------------
DEEP = "[" * 20000 + "]" * 20000
HOSTILE_STRINGS = {"lone surrogate": "\ud800", "lone low surrogate": "x\udfff", "NUL": "a\x00b"}


def _api_json_endpoints(app):
    """(method, path, field names) of every API route that takes a JSON body, from the published spec."""
    from authsvc.api.openapi import SCHEMAS, spec

    out = []
    for path, item in spec()["paths"].items():
        for method, op in item.items():
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                out.append((method, path, list(SCHEMAS[schema]["properties"]), bool(op.get("security"))))
    assert len(out) >= 7, out
    return out


def _hostile_bodies(fields):
    """Raw JSON texts: 20,000-deep nesting (whole body and inside a field), and each hostile string in every field
    (the rest valid-looking)."""
    import json

    yield "deep body", DEEP
    yield "deep field", "{" + json.dumps(fields[0]) + ": " + DEEP + "}"
    yield "deep object", "{\"a\":" * 9000 + "1" + "}" * 9000  # 9,000 deep: what fits under the 64 KiB limit
    for name, bad in HOSTILE_STRINGS.items():
        for f in fields:
            body = {g: ("alice@example.com" if "email" in g else PASSWORD) for g in fields}
            body[f] = body[f] + bad
            yield f"{name} in {f}", json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \\ud800


def test_every_api_json_endpoint_refuses_hostile_json_with_a_clear_400(app, client):
    create_user(app)
    token = api_login(client)
    for method, path, fields, secured in _api_json_endpoints(app):
        headers = {"Content-Type": "application/json", **(bearer(token) if secured else {})}
        for what, raw in _hostile_bodies(fields):
            r = client.open(path, method=method.upper(), data=raw, headers=headers)
            assert r.status_code == 400, (path, what, r.status_code, r.get_data(as_text=True)[:300])
            assert r.is_json and r.json["error"] == "invalid_input" and r.json["message"], (path, what)
    # Nothing was done with any of it: the account and the session are as they were.
    assert client.get("/api/v1/session", headers=bearer(token)).status_code == 200
    api_login(client)


def test_mfa_json_endpoints_refuse_hostile_json_with_a_clear_400(app, client):
    from tests.functional.helpers import login
    from tests.functional.mfa_helpers import meta_csrf

    create_user(app)
    assert login(client).status_code == 302
    csrf = meta_csrf(client.get("/mfa/passkeys").get_data(as_text=True))
    headers = {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf}
    # (register/options reads no body.)
    for url in ("/mfa/webauthn/register/verify", "/mfa/webauthn/authenticate/options",
                "/mfa/webauthn/authenticate/verify"):
        bodies = list(_hostile_bodies(["flow", "name", "next"]))
        bodies.append(("surrogate name", '{"credential": {"id": "x", "response": {}}, "name": "key\\ud800"}'))
        for what, raw in bodies:
            r = client.post(url, data=raw, headers=headers)
            assert 400 <= r.status_code < 500 and r.status_code not in (401, 403), (url, what, r.status_code)
            assert r.is_json, (url, what)
