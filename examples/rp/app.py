"""A minimal relying party: signs users in through authsvc (OIDC code flow + PKCE S256), shows their claims, and
signs them out when authsvc says their sign-in ended (OpenID Connect Back-Channel Logout 1.0).

    AUTHSVC_ISSUER=http://localhost:5000 RP_CLIENT_ID=... RP_CLIENT_SECRET=... flask --app examples/rp/app.py run -p 8000

Register it with its back-channel logout URI so authsvc can reach it:

    authsvc clients create --name "Example RP" --redirect-uri http://127.0.0.1:8000/callback \\
        --post-logout-redirect-uri http://127.0.0.1:8000/ --backchannel-logout-uri http://127.0.0.1:8000/backchannel-logout

The sessions here are Flask's signed cookies, which the server cannot delete. So the app remembers which sign-ins
authsvc ended (``ended_sids``; ``ended_subs`` for a token that names only the user) and drops any session that
belongs to one on its next request. Kept in memory for one process here; a real app keeps them where its sessions
live (Redis, SQL), for as long as its sessions can last.
"""

import os
import secrets
import threading
import time

from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, redirect, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 60  # seconds of clock skew allowed on iat / exp

app = Flask(__name__)
app.secret_key = os.environ.get("RP_SECRET_KEY") or secrets.token_hex(32)
oauth = OAuth(app)
oauth.register(
    "authsvc",
    client_id=os.environ["RP_CLIENT_ID"],
    client_secret=os.environ["RP_CLIENT_SECRET"],
    server_metadata_url=os.environ.get("AUTHSVC_ISSUER", "http://localhost:5000")
    + "/.well-known/openid-configuration",
    client_kwargs={"scope": "openid email offline_access", "code_challenge_method": "S256"},
)

_lock = threading.Lock()
ended_sids: dict[str, float] = {}  # sid → when authsvc said it ended
ended_subs: dict[str, float] = {}  # sub → every sign-in of that user before this instant ended
seen_jtis: dict[str, float] = {}  # jti → until when it is remembered (replays are refused, §2.6 step 7)


@app.before_request
def drop_sessions_ended_at_authsvc():
    user = session.get("user")
    if not user:
        return
    with _lock:
        ended = user.get("sid") in ended_sids or ended_subs.get(user.get("sub"), 0) >= session.get("login_at", 0)
    if ended:
        session.clear()


@app.get("/")
def home():
    user = session.get("user")
    if not user:
        return '<a href="/login">Sign in with authsvc</a>'
    return f'<pre>{user}</pre><a href="/logout">Sign out</a>'


@app.get("/login")
def login():
    return oauth.authsvc.authorize_redirect(url_for("callback", _external=True))


@app.get("/callback")
def callback():
    token = oauth.authsvc.authorize_access_token()  # checks state, iss, nonce and the ID token signature (JWKS)
    session["user"] = token["userinfo"]  # the ID token's claims, with the sign-in's sid
    session["id_token"] = token["id_token"]
    session["login_at"] = time.time()
    return redirect("/")


@app.get("/me")
def me():
    return jsonify(session.get("user"))


@app.get("/logout")
def logout():
    id_token = session.pop("id_token", None)
    session.clear()
    meta = oauth.authsvc.load_server_metadata()
    return redirect(f"{meta['end_session_endpoint']}?id_token_hint={id_token}"
                    f"&post_logout_redirect_uri={url_for('home', _external=True)}")


# --- OpenID Connect Back-Channel Logout 1.0 -----------------------------------------------------------------------------
class InvalidLogoutToken(ValueError):
    pass


def _keyset(force: bool = False) -> KeySet:
    return KeySet.import_key_set(oauth.authsvc.fetch_jwk_set(force=force))


def validate_logout_token(token: str) -> dict:
    """§2.6, every step: signature against authsvc's JWKS with the algorithms it announces (never ``none``), typed
    ``logout+jwt``, iss / aud / iat / exp as for an ID token, a sub or a sid, the back-channel logout event, no nonce,
    and a jti not seen before. Returns the claims; raises ``InvalidLogoutToken``."""
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise InvalidLogoutToken("missing or oversized logout_token")
    meta = oauth.authsvc.load_server_metadata()
    algs = [a for a in meta.get("id_token_signing_alg_values_supported", ["RS256"]) if a != "none"]
    try:
        try:
            t = jwt.decode(token, _keyset(), algorithms=algs)
        except JoseError:
            t = jwt.decode(token, _keyset(force=True), algorithms=algs)  # the OP may have rotated its keys
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidLogoutToken(f"signature: {type(exc).__name__}") from None
    if t.header.get("typ") != "logout+jwt":
        raise InvalidLogoutToken("not typed logout+jwt")  # an ID token or another JWT of the same issuer
    claims = t.claims
    now = int(time.time())
    try:
        jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY, iss={"essential": True, "value": meta["issuer"]},
                              aud={"essential": True, "value": oauth.authsvc.client_id},
                              iat={"essential": True}, exp={"essential": True},
                              jti={"essential": True}).validate(claims)
    except JoseError as exc:
        raise InvalidLogoutToken(f"claims: {exc.error}") from None
    if claims["iat"] > now + LEEWAY:
        raise InvalidLogoutToken("issued in the future")
    if not isinstance(claims.get("sub"), str) and not isinstance(claims.get("sid"), str):
        raise InvalidLogoutToken("neither sub nor sid")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise InvalidLogoutToken("not a back-channel logout event")
    if "nonce" in claims:
        raise InvalidLogoutToken("a logout token never has a nonce")
    with _lock:
        for jti, until in list(seen_jtis.items()):
            if until < now:
                del seen_jtis[jti]
        if claims["jti"] in seen_jtis:
            raise InvalidLogoutToken("replayed jti")
        seen_jtis[claims["jti"]] = claims["exp"] + LEEWAY
    return claims


@app.post("/backchannel-logout")
def backchannel_logout():
    headers = {"Cache-Control": "no-store"}  # §2.8
    try:
        claims = validate_logout_token(request.form.get("logout_token"))
    except InvalidLogoutToken as exc:
        return jsonify(error="invalid_request", error_description=str(exc)), 400, headers
    with _lock:  # §2.7: end this app's sessions of that sign-in (or of that user, when no sid is given)
        if isinstance(claims.get("sid"), str):
            ended_sids[claims["sid"]] = time.time()
        else:
            ended_subs[claims["sub"]] = time.time()
    return "", 200, headers
