"""RISC receiver (RFC 8935 recipient, RISC 1.0): SETs pushed by one configured upstream transmitter (a partner, or
e.g. Google Cross-Account Protection) saying that one of our users' credentials is compromised or that their account
there was disabled. We act as on "this wasn't me": the password stops working (reset by e-mail), every session ends,
the event is audited (which also tells our own SSF receivers: session-revoked), and the user gets an e-mail.

Checks, in order, each failure a 400 with an RFC 8935 §2.3 error code: media type, size, signature against the
upstream's JWKS (fetched over https, cached; unknown kid → one refetch), explicit ``typ`` secevent+jwt (SSF §4.1.1),
``iss`` = the configured issuer, ``aud`` = our audience, a ``jti``. A jti seen before is answered 202 without acting
again (kept 7 days in Redis). JWKS or Redis unreachable → 503: we never accept a SET we could not verify.
"""

from __future__ import annotations

import hashlib

import logging
import threading
import time

import requests
from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import ngettext
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from authsvc.i18n.mail import mail_language
from authsvc.signals.ssf import RISC, SET_TYP

log = logging.getLogger(__name__)
bp = Blueprint("risc_receiver", __name__)
MAX_SET = 16 * 1024
JWKS_TTL = 600
JTI_TTL = 7 * 86400
ACTED = {RISC + "credential-compromise": "credential_compromise", RISC + "account-disabled": "account_disabled"}
ALGS = ["RS256", "PS256", "ES256", "ES384", "RS384", "RS512"]


class Unavailable(Exception):
    pass


class UpstreamKeys:
    def __init__(self, url: str, timeout: float = 3.0):
        self.url = url
        self.timeout = timeout
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> KeySet:
        with self._lock:
            now = time.monotonic()
            stale = self._keys is None or now - self._fetched > JWKS_TTL
            if stale or (refresh and now - self._fetched > 60):
                try:
                    r = requests.get(self.url, timeout=self.timeout, allow_redirects=False)
                    r.raise_for_status()
                    self._keys = KeySet.import_key_set(r.json())
                    self._fetched = now
                except (requests.RequestException, ValueError, JoseError, TypeError) as exc:
                    if self._keys is None or stale:
                        raise Unavailable(f"upstream JWKS: {type(exc).__name__}") from None
            return self._keys


def _err(status: int, err: str, description: str):
    resp = jsonify({"err": err, "description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _keys() -> UpstreamKeys:
    ext = current_app.extensions
    if "authsvc.risc_keys" not in ext:
        ext["authsvc.risc_keys"] = UpstreamKeys(ext["authsvc.signals"].settings.signals_upstream_jwks_url)
    return ext["authsvc.risc_keys"]


@bp.post("/ssf/receiver/risc")
def receive():
    settings = current_app.extensions["authsvc.signals"].settings
    if not settings.signals_upstream_issuer:
        return _err(404, "invalid_request", "no upstream transmitter is configured")
    if request.mimetype != "application/secevent+jwt":
        return _err(400, "invalid_request", "send one SET as application/secevent+jwt (RFC 8935 §2.1)")
    if (request.content_length or 0) > MAX_SET:
        return _err(400, "invalid_request", f"a SET is limited to {MAX_SET} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_SET or not raw:
        return _err(400, "invalid_request", f"a SET of 1 to {MAX_SET} bytes is required")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return _err(400, "invalid_request", "a SET is a compact JWS (ASCII)")
    keys = _keys()
    try:
        try:
            tok = jwt.decode(token, keys.get(), algorithms=ALGS)
        except (JoseError, ValueError):
            # Perhaps the upstream rotated its keys: fetch them again (at most once a minute) and retry once.
            tok = jwt.decode(token, keys.get(refresh=True), algorithms=ALGS)
    except Unavailable as exc:
        log.warning("RISC receiver: %s", exc)
        return _err(503, "temporarily_unavailable", "the upstream keys cannot be fetched now; retry later")
    except (JoseError, ValueError, TypeError):
        return _err(400, "invalid_key", "the SET signature does not verify with the upstream's keys")
    header, claims = tok.header, tok.claims
    if header.get("typ") != SET_TYP:
        return _err(400, "invalid_request", "typ must be secevent+jwt (SSF 1.0 §4.1.1)")
    if claims.get("iss") != settings.signals_upstream_issuer:
        return _err(400, "invalid_issuer", "iss is not the configured upstream transmitter")
    aud = claims.get("aud")
    audience = settings.signals_upstream_audience or current_app.extensions["authsvc.oauth"].issuer
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        return _err(400, "invalid_audience", "aud does not name this receiver")
    jti, events = claims.get("jti"), claims.get("events")
    if not isinstance(jti, str) or not jti or len(jti) > 256 or not isinstance(events, dict) or not events:
        return _err(400, "invalid_request", "jti and events are required (RFC 8417 §2.2)")
    from authsvc.extensions import get_redis

    key = "ssf:rx:jti:" + hashlib.sha256(f"{claims['iss']}|{jti}".encode()).hexdigest()
    try:
        r = get_redis()
        if not r.set(key, "1", nx=True, ex=JTI_TTL):
            return "", 202  # a replay (or a retry of one we already acted on): accepted, nothing done again
    except Exception:  # noqa: BLE001 - cannot tell a replay from a first delivery: refuse, the sender retries
        return _err(503, "temporarily_unavailable", "try again later")
    try:
        for event_type, body in events.items():
            if event_type in ACTED:
                _act(ACTED[event_type], claims.get("sub_id") or (body or {}).get("subject"), claims, body)
    except Exception:
        try:
            r.delete(key)  # not acted on: the sender's retry must be processed
        except Exception:  # noqa: BLE001
            pass
        raise
    return "", 202


def _user_of(subject):
    from authsvc.extensions import db
    from authsvc.models import User

    if not isinstance(subject, dict):
        return None
    if subject.get("format") == "email" and isinstance(subject.get("email"), str):
        return db.session.execute(select(User).where(User.email == subject["email"].strip().lower()[:320])) \
            .scalar_one_or_none()
    if subject.get("format") == "iss_sub" and isinstance(subject.get("sub"), str) and \
            subject.get("iss") == current_app.extensions["authsvc.oauth"].issuer:
        return db.session.execute(select(User).where(User.sub == subject["sub"][:64])).scalar_one_or_none()
    return None  # another transmitter's own subject ids: we hold no mapping, so nothing to act on


def _act(what: str, subject, claims: dict, body) -> None:
    from authsvc.accounts.service import require_password_change
    from authsvc.extensions import db
    from authsvc.services import services

    user = _user_of(subject)
    svc = services()
    if user is None:
        svc.audit.record(f"ssf:receiver:{what}", "info", reason="no matching account",
                         details={"iss": str(claims.get("iss"))[:120], "jti": str(claims.get("jti"))[:64]})
        return
    user.password_hash = None  # whoever holds the compromised password must not sign in with it, nor reset it
    require_password_change(user, "upstream")
    reason = None
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        reason = body["reason"][:64]
    svc.audit.record(f"ssf:receiver:{what}", "success", subject_id=user.id, reason=reason,
                     details={"iss": str(claims.get("iss"))[:120], "jti": str(claims.get("jti"))[:64]}, commit=False)
    db.session.commit()
    ended = svc.sessions.revoke_all(user, f"upstream_{what}"[:64])
    for listener in svc.accounts.lockdown_listeners:
        listener(user)
    settings = svc.settings
    svc.tokens.invalidate("reset", user.id)
    link = f"{settings.base_url}/reset/" + svc.tokens.issue("reset", user.id, settings.reset_token_ttl)
    with mail_language(user):  # a background push: the account's language, never the transmitter's
        svc.mailer.send(
            user.email, _("We protected your %(service)s account", service=settings.service_name),
            (_("A service we work with told us that your account there had its password exposed. To be safe we "
               "have:") if what == "credential_compromise" else
             _("A service we work with told us that your account there was disabled, possibly taken over. To be "
               "safe we have:")) + "\n"
            + "  - " + ngettext("signed you out everywhere (%(num)d session ended);",
                                "signed you out everywhere (%(num)d sessions ended);", ended) + "\n"
            + "  - " + _("switched off your password here: nobody can sign in with it any more.") + "\n\n"
            + _("Choose a new password with this link (valid for %(minutes)s minutes):",
                minutes=max(1, settings.reset_token_ttl // 60))
            + f"\n  {link}\n\n" + _("Use a password you use nowhere else.") + "\n")


def init_app(app) -> None:
    from authsvc.extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)



