"""Signing-key rotation and encryption at rest; client registration rules (real SQL and Redis via the app)."""

from __future__ import annotations

import json

import pytest

from authsvc.oauth.clients import ClientError


def test_keys_rotate_publishes_current_and_next_and_keeps_private_keys_encrypted(app):
    from authsvc.extensions import db
    from authsvc.models import OAuthSigningKey

    with app.app_context():
        keys = app.extensions["authsvc.oauth"].keys
        _, kid1, _ = keys.signing_key()
        published = {k["kid"] for k in keys.jwks()["keys"]}
        assert kid1 in published and len(published) == 2
        assert all("d" not in k for k in keys.jwks()["keys"])  # public parts only
        for row in db.session.execute(db.select(OAuthSigningKey)).scalars():
            assert '"d"' not in row.private_jwk_enc and "d" not in json.loads(row.public_jwk)
        nxt = (published - {kid1}).pop()
    result = app.test_cli_runner().invoke(args=["keys", "rotate"], catch_exceptions=False)
    assert result.exit_code == 0
    with app.app_context():
        keys = app.extensions["authsvc.oauth"].keys
        _, kid2, _ = keys.signing_key()
        assert kid2 == nxt  # the pre-published next key signs now
        assert {kid1, kid2} <= {k["kid"] for k in keys.jwks()["keys"]}  # the retired key stays published
        assert len(keys.jwks()["keys"]) == 3


def test_clients_cli_create_list_rotate_delete(app):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["clients", "create", "--name", "CLI RP", "--redirect-uri", "https://rp.example/cb"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    cid = r.output.split("client_id:")[1].split()[0]
    secret = r.output.split("client_secret:")[1].split()[0]
    with app.app_context():
        client = app.extensions["authsvc.oauth"].clients.get(cid)
        assert client.check_client_secret(secret) and secret not in json.dumps(client.__dict__)
    assert cid in runner.invoke(args=["clients", "list"]).output
    r = runner.invoke(args=["clients", "rotate-secret", cid])
    new = r.output.split("client_secret:")[1].split()[0]
    with app.app_context():
        client = app.extensions["authsvc.oauth"].clients.get(cid)
        assert client.check_client_secret(new) and not client.check_client_secret(secret)
    assert runner.invoke(args=["clients", "delete", cid, "--yes"]).exit_code == 0
    with app.app_context():
        assert app.extensions["authsvc.oauth"].clients.get(cid) is None


@pytest.mark.parametrize("kw, field", [
    ({"grant_types": ["password"]}, "grant_types"),
    ({"grant_types": ["implicit"]}, "grant_types"),
    ({"redirect_uris": ["http://rp.example/cb"]}, "redirect_uri"),
    ({"redirect_uris": ["https://rp.example/cb#frag"]}, "redirect_uri"),
    ({"redirect_uris": []}, "redirect_uri"),
    ({"client_type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
    ({"token_format": "jwt", "access_token_ttl": 3600}, "access_token_ttl"),
    ({"scopes": ["admin"]}, "scopes"),
])
def test_client_registration_rules(app, kw, field):
    kw = {"name": "x", "redirect_uris": ["https://rp.example/cb"], **kw}
    with app.app_context(), pytest.raises(ClientError) as exc:
        app.extensions["authsvc.oauth"].clients.create(**kw)
    assert exc.value.field == field


def test_redirect_matching_is_exact_except_loopback_port(app):
    with app.app_context():
        svc = app.extensions["authsvc.oauth"].clients
        row, _ = svc.create(name="n", redirect_uris=["https://rp.example/cb", "http://127.0.0.1/cb"])
        c = svc.get(row.id)
    assert c.check_redirect_uri("https://rp.example/cb")
    assert c.check_redirect_uri("http://127.0.0.1:8123/cb")
    for bad in ("https://rp.example/cb/", "https://rp.example:443/cb", "https://rp.example/cb?a=b",
                "http://localhost:8123/cb", "http://127.0.0.1:8123/cb2", "https://127.0.0.1:8123/cb"):
        assert not c.check_redirect_uri(bad), bad
