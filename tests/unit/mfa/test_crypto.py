"""TOTP seeds encrypted at rest with versioned keys; rotation re-encrypts lazily and loses nobody."""

import base64
import os

import pytest

from authsvc.config import ConfigError, load_settings
from authsvc.mfa.config import load_mfa_settings, parse_keys
from authsvc.mfa.crypto import SecretBox, UnknownKeyVersion
from authsvc.mfa.totp import code_at
from tests.conftest import create_user


def _key(version):
    return f"{version}:" + base64.b64encode(os.urandom(32)).decode()


def test_ciphertext_is_bound_to_its_owner_and_version():
    box = SecretBox(parse_keys(_key("v1")))
    sealed = box.encrypt(b"seed", context="totp:u1")
    assert b"seed" not in sealed.encode() and sealed.startswith("v1:")
    assert box.decrypt(sealed, context="totp:u1") == (b"seed", False)
    with pytest.raises(UnknownKeyVersion):
        box.decrypt(sealed, context="totp:u2")  # copied onto another user's row
    with pytest.raises(UnknownKeyVersion):
        box.decrypt("v9" + sealed[2:], context="totp:u1")


@pytest.mark.parametrize("raw", ["", "v1", "v1:notbase64!", "v1:" + base64.b64encode(b"short").decode(),
                                 _key("v1") + "," + _key("v1").replace("v1", "v1")])
def test_bad_key_settings_are_refused_naming_the_setting(raw):
    with pytest.raises(ConfigError) as exc:
        parse_keys(raw)
    assert exc.value.setting == "AUTHSVC_MFA_ENCRYPTION_KEYS"


def test_default_key_is_generated_once_into_the_instance_folder(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path)}, environ={})
    first = load_mfa_settings(settings, str(tmp_path), environ={})
    again = load_mfa_settings(settings, str(tmp_path), environ={})
    assert first.encryption_keys == again.encryption_keys
    assert oct(os.stat(tmp_path / "mfa_keys").st_mode & 0o777) == "0o600"
    assert first.webauthn_rp_id == "localhost" and first.webauthn_origins == ("http://localhost:5000",)


def test_origins_must_sit_on_the_rp_id(tmp_path):
    settings = load_settings({"instance_path": str(tmp_path), "webauthn_rp_id": "example.com",
                              "webauthn_origins": "https://evil.test"}, environ={})
    with pytest.raises(ConfigError):
        load_mfa_settings(settings, str(tmp_path), environ={})


def test_key_rotation_keeps_enrolled_users_working(make_app):
    from authsvc.extensions import db
    from authsvc.models import TotpCredential, User
    from authsvc.services import services

    v1, v2 = _key("v1"), _key("v2")
    app1 = make_app(mfa_encryption_keys=v1)
    uid = create_user(app1)
    with app1.app_context():
        user = db.session.get(User, uid)
        secret = services().mfa.totp.begin(user)
        clock = services().clock
        assert services().mfa.totp.confirm(user, code_at(secret, int(clock.timestamp()) // 30))
        row = db.session.get(TotpCredential, uid)
        assert row.key_version == "v1" and secret not in row.secret

    # Rotate: v2 first, v1 still listed. The user still signs in; the row moves to v2 on use.
    app2 = make_app(mfa_encryption_keys=f"{v2},{v1}")
    with app2.app_context():
        user = db.session.get(User, uid)
        services().clock.advance(30)
        assert services().mfa.totp.verify(user, code_at(secret, int(services().clock.timestamp()) // 30))
        row = db.session.get(TotpCredential, uid)
        assert row.key_version == "v2" and row.secret.startswith("v2:")

    # v1 retired: still fine, nobody lost.
    app3 = make_app(mfa_encryption_keys=v2)
    with app3.app_context():
        user = db.session.get(User, uid)
        services().clock.advance(60)
        assert services().mfa.totp.verify(user, code_at(secret, int(services().clock.timestamp()) // 30))


def test_rewrap_command_moves_every_seed_before_an_old_key_is_retired(make_app):
    from authsvc.extensions import db
    from authsvc.models import TotpCredential, User
    from authsvc.services import services

    v1, v2 = _key("v1"), _key("v2")
    app1 = make_app(mfa_encryption_keys=v1)
    uids = [create_user(app1, f"u{i}@example.com") for i in range(3)]
    with app1.app_context():
        for uid in uids:
            user = db.session.get(User, uid)
            s = services().mfa.totp.begin(user)
            assert services().mfa.totp.confirm(user, code_at(s, int(services().clock.timestamp()) // 30))
    app2 = make_app(mfa_encryption_keys=f"{v2},{v1}")
    result = app2.test_cli_runner().invoke(args=["mfa", "rewrap"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3" in result.output
    with app2.app_context():
        assert {r.key_version for r in db.session.execute(db.select(TotpCredential)).scalars()} == {"v2"}
