"""A minimal relying party: signs users in through authsvc (OIDC code flow + PKCE S256) and shows their claims.

    AUTHSVC_ISSUER=http://localhost:5000 RP_CLIENT_ID=... RP_CLIENT_SECRET=... flask --app examples/rp/app.py run -p 8000
"""

import os
import secrets

from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, redirect, session, url_for

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
    session["user"] = token["userinfo"]
    session["id_token"] = token["id_token"]
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
