"""Issue 12 item 5: two hosts (two app instances with their own instance folders) on one database and one Redis.
With the documented shared secrets both hosts use each other's TOTP seeds and signing keys; without them the second
host refuses to start with a message naming the settings."""

from __future__ import annotations

import base64
import secrets

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import create_user
from tests.functional.helpers import login
from tests.functional.mfa_helpers import current_code, enrol_totp
from tests.functional.oauth_helpers import code_tokens, get_code, redeem


def _shared_keys():
    return {"mfa_encryption_keys": "v1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "OAUTH_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")}


def _verify_id_token(host, id_token):
    jwks = KeySet.import_key_set(host.test_client().get("/oauth2/jwks").json)
    return jwt.decode(id_token, jwks, algorithms=["RS256", "ES256"]).claims


def test_two_hosts_with_shared_keys_use_each_others_seeds_and_signing_keys(make_app, tmp_path):
    from authsvc.extensions import db
    from authsvc.models import User
    from authsvc.services import services

    keys = _shared_keys()
    host_a = make_app(instance_path=str(tmp_path / "host-a"), **keys)
    uid = create_user(host_a, "totp@example.com")
    seed = enrol_totp(host_a, uid)  # enrolled via A
    cid, secret, issued = code_tokens(host_a, host_a.test_client())  # signed by A

    host_b = make_app(instance_path=str(tmp_path / "host-b"), **keys)  # starts: it can open A's data
    with host_b.app_context():
        user = db.session.get(User, uid)
        services().clock.advance(60)
        assert services().mfa.totp.verify(user, current_code(host_b, seed))  # verifies via B
    assert _verify_id_token(host_b, issued["id_token"])["sub"]  # A's token validates on B

    # B rotates (next → current) and signs; A validates B's token and can sign with the key B made current.
    assert host_b.test_cli_runner().invoke(args=["keys", "rotate"]).exit_code == 0
    b_client = host_b.test_client()
    assert login(b_client).status_code == 302
    code, verifier = get_code(b_client, cid)
    r = redeem(b_client, cid, secret, code, verifier)
    assert r.status_code == 200, r.json
    assert _verify_id_token(host_a, r.json["id_token"])["sub"]
    with host_a.app_context():
        host_a.extensions["authsvc.oauth"].keys.invalidate()
        signer, kid, _ = host_a.extensions["authsvc.oauth"].keys.signing_key()  # decrypts the key B activated
    assert kid == jwt.decode(r.json["id_token"], KeySet([signer])).header["kid"]


def test_a_host_without_the_shared_keys_refuses_to_start(make_app, tmp_path):
    from authsvc.config import ConfigError

    host_a = make_app(instance_path=str(tmp_path / "host-a"))  # keys generated into host-a's folder
    uid = create_user(host_a, "totp@example.com")
    enrol_totp(host_a, uid)
    code_tokens(host_a, host_a.test_client())  # signing keys made under host-a/oauth_kek
    with pytest.raises(ConfigError) as refused:
        make_app(instance_path=str(tmp_path / "host-b"))  # its own, different key files
    message = str(refused.value)
    assert "AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY" in message and "AUTHSVC_MFA_ENCRYPTION_KEYS" in message, message
    assert "OPERATIONS.md" in message


def test_only_the_oauth_key_missing_names_only_that_setting(make_app, tmp_path):
    from authsvc.config import ConfigError

    keys = _shared_keys()
    host_a = make_app(instance_path=str(tmp_path / "host-a"), **keys)
    enrol_totp(host_a, create_user(host_a, "totp@example.com"))
    with host_a.app_context():
        host_a.extensions["authsvc.oauth"].keys.ensure()
    with pytest.raises(ConfigError) as refused:
        make_app(instance_path=str(tmp_path / "host-b"), mfa_encryption_keys=keys["mfa_encryption_keys"])
    assert "AUTHSVC_OAUTH_KEY_ENCRYPTION_KEY" in str(refused.value)
    assert "AUTHSVC_MFA_ENCRYPTION_KEYS" not in str(refused.value)
