"""HTTP surface of the provider. ``api`` = machine endpoints (JSON, RFC 6749 errors, no cookies, CSRF-exempt);
``web`` = pages a person sees (authorize/consent, device, logout, connected apps), CSRF-protected forms."""

from __future__ import annotations

import json
import logging
import re
import secrets
from urllib.parse import urlencode, urlsplit

import redis
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import (Blueprint, current_app, flash, g, jsonify, make_response, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from authsvc.errors import Throttled
from authsvc.models import OAuthConsent
from authsvc.oauth.clients import DEVICE_GRANT, SCOPES, is_clean_uri
from authsvc.oauth.dpop import UseDPoPNonceError, www_authenticate
from authsvc.oauth import par as par_mod
from authsvc.oauth.client_auth import ALGS as PKJWT_ALGS
from authsvc.oauth.keys import ALLOWED_ALGS
from authsvc.oauth.provider import (ACR_AAL1, ACR_AAL2, INVALID_BASIC, PROFILE_CLAIMS, EndUser, OAuthProvider,
                                    malformed_basic)
from authsvc.services import services
from authsvc.web.auth import cookie_session, login_required
from authsvc.web.forms import ActionForm
from authsvc.web.http import CSP, clear_session_cookie

log = logging.getLogger("authsvc.oauth")

api = Blueprint("oauth_api", __name__)
web = Blueprint("oauth", __name__)

_JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest: the RFC 9449 §10 dpop_jkt value
REAUTH_PARAM = "authsvc_reauth"  # a random handle on a server-side "a login after this instant counts" (see _reauth)


def provider() -> OAuthProvider:
    return current_app.extensions["authsvc.oauth"]


def _oauth_error(status: int, error: str, description: str, headers: dict | None = None):
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


# --- JSON error handling for the machine endpoints (RFC 6749 §5.2 shape, never HTML) -------------------------------------
@api.errorhandler(Throttled)
def _throttled(exc: Throttled):
    return _oauth_error(429, "too_many_requests", "Request quota exceeded; retry later.",
                        {"Retry-After": str(exc.retry_after)})


@api.errorhandler(redis.exceptions.ConnectionError)
@api.errorhandler(redis.exceptions.TimeoutError)
@api.errorhandler(redis.exceptions.BusyLoadingError)
@api.errorhandler(OperationalError)
@api.errorhandler(DBAPIError)
def _store_down(exc):
    # Fail closed: a token we cannot check is neither active nor inactive — it is "ask again later" (503).
    log.error("oauth: dependency unavailable: %s", type(exc).__name__)
    from authsvc import metrics
    from authsvc.extensions import db

    metrics.UNAVAILABLE.labels(metrics.dependency_of(exc)).inc()
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; best effort
        pass
    return _oauth_error(503, "temporarily_unavailable", "A backing store is unavailable.", {"Retry-After": "5"})


_CLIENT_AUTH_ENDPOINTS = {"oauth_api.token", "oauth_api.revoke", "oauth_api.introspect",
                          "oauth_api.device_authorization", "oauth_api.par"}


@api.before_request
def _refuse_malformed_basic():
    # Before Authlib: it raises on non-UTF-8 Basic credentials (→ 500) and ignores undecodable ones.
    if request.endpoint in _CLIENT_AUTH_ENDPOINTS and malformed_basic(request.headers.get("Authorization")):
        return _oauth_error(401, INVALID_BASIC["error"], INVALID_BASIC["error_description"],
                            {"WWW-Authenticate": 'Basic realm="authsvc"'})
    return None


@api.after_request
def _cors(resp):
    from authsvc.oauth import cors

    return cors.apply(provider(), resp)


def _method_not_allowed(allowed: str):
    return _oauth_error(405, "invalid_request", f"Use {allowed}.", {"Allow": allowed})


# --- discovery ---------------------------------------------------------------------------------------------------------
def _metadata() -> dict:
    iss = provider().issuer
    return {
        "issuer": iss,
        "authorization_endpoint": iss + "/oauth2/authorize",
        "token_endpoint": iss + "/oauth2/token",
        "userinfo_endpoint": iss + "/oauth2/userinfo",
        "jwks_uri": iss + "/oauth2/jwks",
        "revocation_endpoint": iss + "/oauth2/revoke",
        "introspection_endpoint": iss + "/oauth2/introspect",
        "end_session_endpoint": iss + "/oauth2/logout",
        "device_authorization_endpoint": iss + "/oauth2/device_authorization",
        "pushed_authorization_request_endpoint": iss + "/oauth2/par",  # RFC 9126 §5
        "require_pushed_authorization_requests": False,  # per client instead (require_pushed_authorization_requests)
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                                  "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(PKJWT_ALGS),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                                       "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": list(PKJWT_ALGS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                          "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": list(PKJWT_ALGS),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [provider().settings.signing_alg],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email",
                             "email_verified", *PROFILE_CLAIMS],
        "acr_values_supported": [ACR_AAL1, ACR_AAL2],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "dpop_signing_alg_values_supported": list(provider().dpop.algorithms),  # RFC 9449 §5.1
        # OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens carry sid, and ID tokens carry the same sid.
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


@api.get("/.well-known/openid-configuration")
@api.get("/.well-known/oauth-authorization-server")
def discovery():
    resp = jsonify(_metadata())
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"  # public metadata; SPAs fetch it cross-origin
    return resp


@api.get("/oauth2/jwks")
def jwks():
    resp = jsonify(provider().keys.jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


# --- token-side endpoints -------------------------------------------------------------------------------------------------
@api.route("/oauth2/token", methods=["GET", "POST"])
def token():
    if request.method != "POST":
        return _method_not_allowed("POST")
    p = provider()
    dpop = bool(request.headers.get("DPoP"))
    try:
        # RFC 9449 §5: verify the proof before Authlib runs; the grants read it (provider.token_proof) to bind
        # tokens, check dpop_jkt / bound refresh families and the client's "DPoP required".
        g.authsvc_dpop_proof = p.dpop_proof("/oauth2/token")
    except OAuth2Error as error:
        resp = p.server.handle_error_response(None, error)
    else:
        resp = p.server.create_token_response()
    nonce = p.dpop_nonce() if dpop else None
    if nonce and "DPoP-Nonce" not in resp.headers:
        resp.headers["DPoP-Nonce"] = nonce  # RFC 9449 §8.2: a fresh nonce with every answer
    return resp


@api.route("/oauth2/revoke", methods=["GET", "POST"])
def revoke():
    if request.method != "POST":
        return _method_not_allowed("POST")
    return provider().server.create_endpoint_response("revocation")


@api.route("/oauth2/introspect", methods=["GET", "POST"])
def introspect():
    if request.method != "POST":
        return _method_not_allowed("POST")
    return provider().introspect()


@api.route("/oauth2/device_authorization", methods=["GET", "POST"])
def device_authorization():
    if request.method != "POST":
        return _method_not_allowed("POST")
    return provider().server.create_endpoint_response("device_authorization")


PAR_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


@api.route("/oauth2/par", methods=["GET", "POST"])
def par():
    """RFC 9126 pushed authorization request: the client authenticates as at the token endpoint (§2), the request is
    validated as the authorization endpoint would (§2.1), and the answer is 201 with a one-time request_uri (§2.2).
    Errors are JSON (§2.3), never a redirect. A DPoP proof here binds the code to its key (RFC 9449 §10.1)."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    p = provider()
    try:
        proof = p.dpop_proof("/oauth2/par")
        client = p.server.authenticate_client(p.server.create_oauth2_request(None), PAR_AUTH_METHODS, endpoint="par")
    except OAuth2Error as error:
        return p.server.handle_error_response(None, error)
    form = request.form

    def bad(error: str, description: str):
        return _oauth_error(400, error, description)

    if "request_uri" in form:  # §2.1: a pushed request must not itself reference one
        return bad("invalid_request", "'request_uri' must not be sent to the pushed authorization request endpoint.")
    if "request" in form:
        return bad("request_not_supported", "Request objects ('request') are not supported; push plain parameters.")
    if form.get("client_id") not in (None, client.client_id) or len(form.getlist("client_id")) > 1:
        return bad("invalid_request", "'client_id' is not the client that authenticated.")
    params = par_mod.clean_params(form)
    if params is None:
        return bad("invalid_request", "Too many parameters for an authorization request.")
    params["client_id"] = [client.client_id]
    if proof is not None:
        if params.get("dpop_jkt") not in (None, [proof.jkt]):  # RFC 9449 §10.1: both given → they must match
            return bad("invalid_request", "'dpop_jkt' does not match the key of the DPoP proof.")
        params["dpop_jkt"] = [proof.jkt]
    request.values = MultiDict([(k, v) for k, vs in params.items() for v in vs])
    refused = _validate_pushed(p, client)
    if refused is not None:
        return refused
    request_uri, expires_in = p.par.push(client.client_id, params)
    p.record("oauth:par:push", "success", client_id=client.client_id, dpop=bool(proof) or None)
    resp = jsonify({"request_uri": request_uri, "expires_in": expires_in})
    resp.status_code = 201
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _validate_pushed(p: OAuthProvider, client):
    """The authorization endpoint's checks on the pushed parameters (request.values), as JSON errors; None if valid."""
    values = request.values
    name = _unsafe_parameter(values)
    if name:
        return _oauth_error(400, "invalid_request", f"The '{name}' parameter holds characters it may not contain.")
    if "openid" in (values.get("scope") or "").split() and not values.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "'redirect_uri' is required in an OpenID Connect request.")
    try:
        grant = p.server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if error.error != "login_required":  # prompt=none: judged when the user arrives, not now
            return _oauth_error(400, error.error, error.description or error.error)
        grant = None
    except ValueError:
        return _oauth_error(400, "invalid_request", "The request is malformed.")
    if values.get("response_mode") not in (None, "", "query", "form_post") or len(values.getlist("response_mode")) > 1:
        return _oauth_error(400, "invalid_request", "'response_mode' must be 'query' or 'form_post'.")
    try:
        p.requested_audiences(client, values.getlist("resource"))
    except OAuth2Error as error:
        return _oauth_error(400, "invalid_target", error.description)
    if len(values.getlist("dpop_jkt")) > 1 or ("dpop_jkt" in values and not _JKT.fullmatch(values.get("dpop_jkt"))):
        return _oauth_error(400, "invalid_request", "'dpop_jkt' must be one RFC 7638 SHA-256 JWK thumbprint.")
    del grant
    return None


@api.route("/oauth2/userinfo", methods=["GET", "POST"])
def userinfo():
    p = provider()
    header = request.headers.get("Authorization", "")
    scheme, _sep, tok = header.partition(" ")
    tok = tok.strip()
    scheme = scheme.lower()
    # RFC 6750 §2.2: the token may come in a form-encoded POST body instead (never in the query, §2.3 is not
    # offered); §3.1: more than one method in one request is invalid_request.
    body_token = (request.form.get("access_token") if request.method == "POST"
                  and request.mimetype == "application/x-www-form-urlencoded" else None)
    if body_token is not None:
        if header:
            return _bearer_error(400, "invalid_request", "Send the access token in one place only (header or body).")
        scheme, tok = "bearer", body_token.strip()
    if scheme not in ("bearer", "dpop") or not tok:
        return _bearer_error(401, "invalid_request", "Send the access token as 'Authorization: Bearer' or 'DPoP'.",
                             dpop=True)
    rec = p.resolve_access(tok)
    if rec is None:
        return _bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.",
                             dpop=scheme == "dpop")
    g.authsvc_cors_client = rec["cid"]  # CORS: the token's client decides which browser origin may read this
    refused = _dpop_refusal(p, scheme, tok, rec)  # RFC 9449 §7: before any quota is spent on the token
    if refused is not None:
        return refused
    p.charge("t:" + rec["jti"], p.settings.token_quota_per_minute, client_id=rec["cid"], what="userinfo")
    client = p.clients.get(rec["cid"])
    if client is None:
        return _bearer_error(401, "invalid_token", "The access token's client no longer exists.")
    p.charge(p.client_quota(client), client.quota_per_minute, client_id=client.client_id, what="userinfo")
    if p.issuer not in rec["aud"].split():
        # Audience restriction: a token minted for another resource server is not accepted here.
        return _bearer_error(401, "invalid_token", "The access token is not meant for this resource (aud).")
    if "openid" not in rec["scope"].split() or not rec.get("uid"):
        return _bearer_error(403, "insufficient_scope", "The 'openid' scope is required.")
    user = p.active_user(rec["uid"])
    if user is None:
        return _bearer_error(401, "invalid_token", "The user is no longer active.")
    resp = jsonify(p.user_claims(user, rec["scope"]))
    resp.headers["Cache-Control"] = "no-store"
    if rec.get("jkt") and p.dpop_nonce():
        resp.headers["DPoP-Nonce"] = p.dpop_nonce()
    return resp


def _dpop_refusal(p: OAuthProvider, scheme: str, tok: str, rec: dict):
    """RFC 9449 §7: a DPoP-bound token (record has ``jkt``) is accepted only as ``Authorization: DPoP`` with a proof
    of that key for this request whose ``ath`` is the token's hash; a bound token sent as a bearer token is refused,
    and so is an unbound token under the DPoP scheme. None when the request may go on."""
    bound = rec.get("jkt")
    if scheme == "bearer":
        if bound:
            return _bearer_error(401, "invalid_token", "This access token is DPoP-bound: present it with "
                                 "'Authorization: DPoP' and a DPoP proof.", dpop_only=True)
        return None
    if not bound:
        return _bearer_error(401, "invalid_token", "This access token is not DPoP-bound: use 'Bearer'.", dpop=True)
    try:
        proof = p.dpop_proof("/oauth2/userinfo", access_token=tok)
    except UseDPoPNonceError as error:
        return _bearer_error(401, "use_dpop_nonce", error.description, dpop_only=True,
                             extra={"DPoP-Nonce": error.nonce})
    except OAuth2Error as error:
        return _bearer_error(401, "invalid_dpop_proof", error.description, dpop_only=True)
    if proof is None:
        return _bearer_error(401, "invalid_dpop_proof", "A DPoP proof is required with a DPoP-bound token.",
                             dpop_only=True)
    if proof.jkt != bound:
        return _bearer_error(401, "invalid_dpop_proof", "The DPoP proof key is not the key the token is bound to.",
                             dpop_only=True)
    return None


def _bearer_error(status: int, error: str, description: str, *, dpop: bool = False, dpop_only: bool = False,
                  extra: dict | None = None):
    """An RFC 6750 §3 error with its challenge; ``dpop``: a DPoP challenge too (RFC 9449 §7.1, with the accepted
    ``algs``), ``dpop_only``: only the DPoP challenge (the token is DPoP-bound, Bearer would not do)."""
    resp = _oauth_error(status, error, description, extra)
    algs = provider().dpop.algorithms
    if dpop_only:
        resp.headers["WWW-Authenticate"] = www_authenticate(error, description, algs)
        return resp
    resp.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    if dpop:
        resp.headers.add("WWW-Authenticate", www_authenticate(error, description, algs))
    return resp


# --- authorization endpoint ------------------------------------------------------------------------------------------------
def _with_iss(resp):
    if resp.status_code in (301, 302, 303) and resp.location:
        provider().issuer_ext.add_issuer_parameter(provider().server, resp)  # RFC 9207: errors carry iss too
    return resp


def _respond(resp, redirect_uri: str | None):
    """The authorization response (success or error) for a redirect URI Authlib has validated: RFC 9207 ``iss``
    added, then sent as asked by ``response_mode`` — a 302 with the query (default), or with ``form_post`` (OAuth 2.0
    Form Post Response Mode) an HTML page whose form posts the same parameters to that URI, submitted by script."""
    resp = _with_iss(resp)
    if request.values.get("response_mode") != "form_post" or not redirect_uri or resp.status_code not in (301, 302,
                                                                                                           303):
        return resp
    from urllib.parse import parse_qsl

    own = {k for k, _ in parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)}
    fields = [(k, v) for k, v in parse_qsl(urlsplit(resp.location).query, keep_blank_values=True) if k not in own]
    page = make_response(render_template("oauth/form_post.html", action=redirect_uri, fields=fields))
    page.headers["Content-Security-Policy"] = _csp_for(redirect_uri)
    page.headers["Cache-Control"] = "no-store"
    return page


def _error_page(error: OAuth2Error, status: int = 400):
    # The redirect URI could not be trusted (unknown client, unregistered URI): show the error, never redirect.
    return render_template("oauth/error.html", error=error.error, description=error.description), status


_FORM_ONLY = ("csrf_token", "decision")  # the consent / logout confirmation forms' own fields, never request parameters


def _request_params() -> dict:
    """The authorization (or logout) request's parameters as a list-valued dict, whether it came by GET or by POST
    (OIDC Core §3.1.2.1 / RP-Initiated Logout §2: both MUST be supported), without the forms' own fields. For a
    pushed request only its reference travels on (client_id, request_uri): the parameters stay on the server."""
    pushed = g.get("authsvc_par")
    if pushed is not None:
        out = {"client_id": [pushed["client_id"]], "request_uri": [pushed["request_uri"]]}
        if request.values.get(REAUTH_PARAM):
            out[REAUTH_PARAM] = request.values.getlist(REAUTH_PARAM)
        return out
    args = request.values.to_dict(flat=False)
    for name in _FORM_ONLY:
        args.pop(name, None)
    return args


def _is_form_post() -> bool:
    """A POST from one of our own forms (consent, logout confirmation) rather than a client's request by POST: it
    carries the form's CSRF token or decision. Such a POST must pass the CSRF check; a request by POST carries
    neither and is treated exactly as the same request by GET (which no CSRF check guards either)."""
    return request.method == "POST" and any(name in request.form for name in _FORM_ONLY)


def _authorize_url(**changes) -> str:
    args = _request_params()
    for k, v in changes.items():
        if v is None:
            args.pop(k, None)
        else:
            args[k] = [v]
    return "/oauth2/authorize?" + urlencode(args, doseq=True)


_REAUTH_TTL = 900  # the user has this long to finish the login the authorization asked for


def _reauth_key(marker: str) -> str:
    return f"oauth:reauth:{{{marker}}}"


def _reauth(reason: str, user_id: int, client_id: str):
    """Send the user through /login again. The marker in the URL is only a random handle: what it means ("a login
    of this user, for this client, after this instant counts") is kept in Redis, so a client that puts
    ``authsvc_reauth`` in its own authorize URL satisfies nothing."""
    p = provider()
    marker = secrets.token_urlsafe(18)
    p.tokens.redis.set(_reauth_key(marker), json.dumps({"uid": user_id, "cid": client_id,
                                                        "t": int(p.clock.timestamp())}), ex=_REAUTH_TTL)
    return redirect(url_for("web.login", next=_authorize_url(**{REAUTH_PARAM: marker})))


def _fresh_login(marker: str, session, user_id: int, client_id: str) -> bool:
    """Whether the session is a login made after the reauthentication that ``marker`` (server-side) asked for."""
    if not marker or len(marker) > 64:
        return False
    raw = provider().tokens.redis.get(_reauth_key(marker))
    if not raw:
        return False
    want = json.loads(raw)
    return (want.get("uid") == user_id and want.get("cid") == client_id
            and session.created_at.timestamp() >= int(want.get("t", 0)))


def _step_up_url(next_url: str) -> str | None:
    # The MFA package owns /mfa/step-up (proves a second factor, re-issues the session at aal2). Use it when present.
    for rule in current_app.url_map.iter_rules():
        if rule.rule == "/mfa/step-up":
            return "/mfa/step-up?" + urlencode({"next": next_url})
    return None


def _csp_for(redirect_uri: str) -> str:
    # Browsers apply form-action to the redirects that follow a form post: the consent form's 302 goes to the client.
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else f"{parts.scheme}:"
    return CSP.replace("form-action 'self'", f"form-action 'self' {origin}")


# Parameters Authlib may echo in an error description, which RFC 6749 limits to %x20-21 / %x23-5B / %x5D-7E.
_ECHOED = ("response_type", "client_id", "scope", "code_challenge", "code_challenge_method", "prompt", "max_age",
           "acr_values", "response_mode", "resource")


def _unsafe_parameter(values) -> str | None:
    """The name of the first authorize parameter with characters that no valid request has, or None."""
    for uri in values.getlist("redirect_uri"):
        if not is_clean_uri(uri):
            return "redirect_uri"  # userinfo, '\\', '"', whitespace, controls, fragment: never a valid redirect URI
    for name in _ECHOED:
        for v in values.getlist(name):
            if any(not (0x20 <= ord(ch) <= 0x7E) or ch in '"\\' for ch in v):
                return name
    return None


@web.route("/oauth2/authorize", methods=["GET", "POST"])
def authorize():
    p = provider()
    consent_post = _is_form_post()
    if consent_post and not ActionForm().validate_on_submit():  # the consent form: CSRF first
        return render_template("message.html", title="Nothing changed",
                               message="Your form expired. Go back to the application and try again."), 400
    g.authsvc_par = None
    if (request.values.get("request_uri") or "").startswith(par_mod.PREFIX):  # ours (any other: not supported)
        refused = _open_pushed_request(p)
        if refused is not None:
            return refused
    bad = _unsafe_parameter(request.values)
    if bad:  # before Authlib: the redirect URI is not trusted yet, so an error page, never a redirect
        return _error_page(OAuth2Error(error="invalid_request",
                                       description=f"The '{bad}' parameter holds characters it may not contain."))
    if "openid" in (request.values.get("scope") or "").split() and not request.values.get("redirect_uri"):
        # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an OpenID request (RFC 6749 alone would let a client with
        # one registered URI omit it). Nothing to redirect to: the error page.
        return _error_page(OAuth2Error(error="invalid_request",
                                       description="'redirect_uri' is required in an OpenID Connect request."))
    session, user = cookie_session()
    if user is None and request.method == "POST" and not consent_post:
        # The session cookie is SameSite=Lax: a request POSTed from the client's site arrives without it. Carry on
        # as a top-level GET (which does send it), so a signed-in user is not asked to sign in again.
        return redirect(_authorize_url(), code=303)
    end_user = EndUser(user, session) if user is not None else None
    try:
        grant = p.server.get_consent_grant(end_user=end_user)
    except OAuth2Error as error:
        if error.redirect_uri:
            _use_up_pushed_request(p)
            return _respond(p.server.handle_error_response(None, error), error.redirect_uri)
        return _error_page(error)
    except ValueError:  # e.g. Authlib refusing to echo a character in an error description: still the client's fault
        return _error_page(OAuth2Error(error="invalid_request", description="The request is malformed."))
    redirect_uri = grant.redirect_uri
    args = request.values
    prompts = (args.get("prompt") or "").split()

    def fail(error_cls_name: str, description: str):
        _use_up_pushed_request(p)
        err = OAuth2Error(error=error_cls_name, description=description, redirect_uri=redirect_uri,
                          state=args.get("state"))
        return _respond(p.server.handle_error_response(None, err), redirect_uri)

    if grant.client.require_par and g.authsvc_par is None:  # RFC 9126 §6
        return fail("invalid_request", "This client must push its authorization requests (RFC 9126 PAR) and send "
                                       "the request_uri it got.")
    if args.get("response_mode") not in (None, "", "query", "form_post") or len(args.getlist("response_mode")) > 1:
        return fail("invalid_request", "'response_mode' must be 'query' or 'form_post'.")
    if args.get("response_mode") == "form_post" and not redirect_uri.startswith(("https://", "http://")):
        request.values = MultiDict({k: v for k, v in args.items(multi=True) if k != "response_mode"})
        return fail("invalid_request", "'form_post' needs an http(s) redirect URI.")
    if "request" in args:  # OIDC Core §6.1: request objects (JAR) are not supported
        return fail("request_not_supported", "Request objects ('request') are not supported; send plain parameters.")
    if "request_uri" in args:  # OIDC Core §6.2
        return fail("request_uri_not_supported", "'request_uri' is not supported; send plain parameters.")
    if "none" in prompts and len(prompts) > 1:
        return fail("invalid_request", "'prompt=none' cannot be combined with other values.")
    try:
        p.requested_audiences(grant.client, args.getlist("resource"))
    except OAuth2Error as error:
        return fail("invalid_target", error.description)  # RFC 8707 §2
    if len(args.getlist("dpop_jkt")) > 1 or ("dpop_jkt" in args and not _JKT.fullmatch(args.get("dpop_jkt"))):
        return fail("invalid_request", "'dpop_jkt' must be one RFC 7638 SHA-256 JWK thumbprint (base64url).")
    # 1. signed in?
    if user is None:
        if "none" in prompts:
            return fail("login_required", "The user is not signed in.")
        return redirect(url_for("web.login", next=_authorize_url()))
    if user.must_change_password:
        # A breached or reported-compromised password: no code until it is replaced; then back here.
        if "none" in prompts:
            return fail("interaction_required", "The user must change their password first.")
        return redirect(url_for("web.change_password", next=_authorize_url()))
    # 2. fresh enough? (prompt=login, max_age)
    marker = args.get(REAUTH_PARAM, "")
    fresh = _fresh_login(marker, session, user.id, grant.client.client_id)
    age = p.clock.timestamp() - session.created_at.timestamp()
    try:
        max_age = int(args["max_age"]) if args.get("max_age") else None
    except ValueError:
        return fail("invalid_request", "'max_age' must be a number of seconds.")
    if not fresh and ("login" in prompts or (max_age is not None and age > max_age)):
        if "none" in prompts:
            return fail("login_required", "A fresh login is required.")
        return _reauth("prompt_login", user.id, grant.client.client_id)
    # 3. strong enough? (acr_values asks for aal2)
    wanted = (args.get("acr_values") or "").split()
    if ACR_AAL2 in wanted and ACR_AAL1 not in wanted and session.aal < 2:
        if "none" in prompts:
            return fail("interaction_required", "A second factor is required.")
        step_up = _step_up_url(_authorize_url())
        if step_up:
            return redirect(step_up)
        # TODO(mfa): until /mfa/step-up exists, a request for aal2 means "log in again"; a fresh login that is still
        # aal1 cannot satisfy it, so the client is told so (OIDC Unmet Authentication Requirements 1.0).
        if fresh:
            return fail("unmet_authentication_requirements", "A second factor is required and is not available.")
        return _reauth("step_up", user.id, grant.client.client_id)
    # 4. consent
    client = grant.client
    scopes = (grant.request.scope or "").split()
    consent = _consent_for(user.id, client.client_id)
    covered = consent is not None and set(scopes) <= set(consent.scopes.split())
    if consent_post:  # CSRF already checked above
        if request.form.get("decision") != "allow":
            p.record("oauth:consent:deny", "info", user_id=user.id, client_id=client.client_id)
            if not _use_up_pushed_request(p):
                return _pushed_request_gone()
            return _respond(p.server.create_authorization_response(grant_user=None, grant=grant), redirect_uri)
        _remember_consent(user.id, client.client_id, scopes, consent)
        p.record("oauth:consent:grant", "success", user_id=user.id, client_id=client.client_id, scope=" ".join(scopes))
        covered = True
    if "consent" in prompts and not consent_post:
        covered = False
    if not covered:
        if "none" in prompts:
            return fail("consent_required", "The user has not consented to this client.")
        resp = make_response(render_template("oauth/consent.html", client=client, scopes=scopes, form=ActionForm(),
                                             action=_authorize_url()))
        resp.headers["Content-Security-Policy"] = _csp_for(redirect_uri)
        return resp
    if not _use_up_pushed_request(p):
        return _pushed_request_gone()  # a racing approval of the same request_uri got the code
    resp = _respond(p.server.create_authorization_response(grant_user=end_user, grant=grant), redirect_uri)
    if marker:
        p.tokens.redis.delete(_reauth_key(marker))  # served its purpose: one authorization per login asked for
    p.record("oauth:code:issue", "success", user_id=user.id, client_id=client.client_id)
    return resp


def _pushed_request_gone():
    return _error_page(OAuth2Error(error="invalid_request_uri",
                                   description="This request_uri is unknown, has expired or was already used."))


def _open_pushed_request(p: OAuthProvider):
    """RFC 9126 §4: replace the request's parameters by the pushed ones (the only ones that count, as with a request
    object, RFC 9101 §5), after checking the request_uri is live and was pushed by the client named in client_id.
    Returns an error page, or None when the request may go on."""
    request_uri = request.values.get("request_uri")
    pushed = p.par.open(request_uri)
    if pushed is None:
        return _pushed_request_gone()
    if request.values.get("client_id") != pushed["cid"]:  # bound to the client that pushed it (§2.2)
        return _error_page(OAuth2Error(error="invalid_request_uri",
                                       description="This request_uri was not pushed by this client."))
    merged = MultiDict()
    for name, values in pushed["params"].items():
        for v in values:
            merged.add(name, v)
    own = MultiDict()
    for name in (REAUTH_PARAM, *_FORM_ONLY):  # our own continuation: the login marker, the consent form's fields
        for v in request.values.getlist(name):
            own.add(name, v)
    request.args = MultiDict([*merged.items(multi=True), *((k, v) for k, v in own.items(multi=True)
                                                          if k == REAUTH_PARAM)])
    request.values = MultiDict([*merged.items(multi=True), *own.items(multi=True)])
    g.authsvc_par = {"client_id": pushed["cid"], "request_uri": request_uri}
    return None


def _use_up_pushed_request(p: OAuthProvider) -> bool:
    """Consume the request_uri (if this is a pushed request) as its authorization response goes out: one response
    per pushed request. False if it was already used (the caller issues nothing)."""
    pushed = g.get("authsvc_par")
    return pushed is None or p.par.consume(pushed["request_uri"])


def _consent_for(user_id: int, client_id: str) -> OAuthConsent | None:
    from authsvc.extensions import db

    return db.session.execute(select(OAuthConsent).where(OAuthConsent.user_id == user_id,
                                                         OAuthConsent.client_id == client_id,
                                                         OAuthConsent.revoked_at.is_(None))).scalar_one_or_none()


def _remember_consent(user_id: int, client_id: str, scopes: list[str], existing: OAuthConsent | None) -> None:
    from authsvc.extensions import db

    row = existing or db.session.execute(select(OAuthConsent).where(
        OAuthConsent.user_id == user_id, OAuthConsent.client_id == client_id)).scalar_one_or_none()
    now = provider().clock.now()
    if row is None:
        db.session.add(OAuthConsent(user_id=user_id, client_id=client_id, scopes=" ".join(scopes), granted_at=now))
    else:
        merged = scopes if row.revoked_at else list(dict.fromkeys(row.scopes.split() + scopes))
        row.scopes, row.granted_at, row.revoked_at = " ".join(merged), now, None
    db.session.commit()


# --- connected apps (consents the user can revoke) --------------------------------------------------------------------
@web.get("/account/apps")
@login_required
def apps():
    from authsvc.web.center import consents_for  # the same list the security center shows

    session, user = cookie_session()
    return render_template("oauth/apps.html", consents=consents_for(user), form=ActionForm())


@web.post("/account/apps/revoke")
@login_required
def revoke_app():
    session, user = cookie_session()
    form = ActionForm()
    if not form.validate_on_submit() or not form.target.data:
        return render_template("message.html", title="Nothing changed", message="Reload the page and try again."), 400
    consent = _consent_for(user.id, form.target.data)
    if consent is not None:
        from authsvc.extensions import db

        consent.revoked_at = provider().clock.now()
        db.session.commit()
        n = provider().revoke_for_user_client(user.id, consent.client_id, "consent_revoked")
        provider().record("oauth:consent:revoke", "success", user_id=user.id, client_id=consent.client_id, grants=n)
        flash(_("The application's access was removed."), "success")
    return redirect(url_for("oauth.apps"))


# --- device flow: the page where the signed-in user enters the code shown on the TV -----------------------------------
DEVICE_GUESSES_PER_SESSION, DEVICE_GUESSES_PER_USER, DEVICE_GUESSES_PER_IP = 10, 20, 30  # per minute


@web.route("/device", methods=["GET", "POST"])
@login_required
def device():
    p = provider()
    session, user = cookie_session()
    form = ActionForm()
    code = (request.values.get("user_code") or "").strip()
    if request.method == "GET":
        return render_template("oauth/device.html", form=form, user_code=code)
    if not form.validate_on_submit():
        return render_template("oauth/device.html", form=form, user_code=code,
                               error=_("Your form expired. Try again.")), 400
    # User codes have ~34 bits: cap guesses so they cannot be enumerated (RFC 8628 §5.1) — per login session, per
    # user (new sessions do not buy new guesses) and per network client (new accounts do not either).
    from authsvc.web.http import request_context

    p.charge("d:" + session.id, DEVICE_GUESSES_PER_SESSION, client_id="-", what="device_verification")
    p.charge(f"du:{user.id}", DEVICE_GUESSES_PER_USER, client_id="-", what="device_verification")
    p.charge(f"di:{request_context().ip or '-'}", DEVICE_GUESSES_PER_IP, client_id="-", what="device_verification")
    cred = p.device.by_user_code(code)
    if cred is None:
        return render_template("oauth/device.html", form=form, user_code=code,
                               error=_("That code is not valid or has expired.")), 400
    client = p.clients.get(cred.get_client_id())
    decision = request.form.get("decision")
    if decision is None or client is None:
        # Device-code phishing: name the app and where the request came from, and warn when that is not where the
        # person approving it is (the code was most likely sent to them by someone else).
        origin = p.place_of(cred.data.get("rip") or None)
        mine = p.place_of(request_context().ip)
        return render_template("oauth/device_confirm.html", form=form, user_code=cred.get_user_code(),
                               client=client, scopes=cred.get_scope().split(), origin=origin, mine=mine,
                               elsewhere=p.places_differ(origin, mine))
    if decision == "allow":
        p.device.decide(cred, EndUser(user, session), approver_ip=request_context().ip)
        p.record("oauth:device:approve", "success", user_id=user.id, client_id=client.client_id,
                 scope=cred.get_scope())
        return render_template("message.html", title="Device connected",
                               message=f"{client.name} is now signed in. You can return to your device.")
    p.device.decide(cred, None)
    p.record("oauth:device:deny", "info", user_id=user.id, client_id=client.client_id)
    return render_template("message.html", title="Request denied", message="The device was not signed in.")


# --- RP-initiated logout ---------------------------------------------------------------------------------------------
@web.route("/oauth2/logout", methods=["GET", "POST"])
def logout():
    p = provider()
    try:
        req = p.server.validate_endpoint_request("end_session")
    except InvalidRequestError as error:
        return _error_page(error)  # never redirect on a bad logout request (RP-Initiated Logout §4)
    session, user = cookie_session()
    if user is None and request.method == "POST" and not _is_form_post():
        # As at /oauth2/authorize: a cross-site POST carries no SameSite=Lax cookie; a top-level GET does.
        return redirect("/oauth2/logout?" + urlencode(_request_params(), doseq=True), code=303)
    claims = req.id_token_claims or {}
    hint_matches = user is not None and claims.get("sub") == user.sub
    if _is_form_post():  # our confirmation form (a logout request by POST carries no CSRF token: see below)
        form = ActionForm()
        if not form.validate_on_submit():
            return render_template("message.html", title="Not signed out",
                                   message="Your form expired. Reload the page and try again."), 400
        confirmed = True
    else:  # a logout request, by GET or POST (RP-Initiated Logout §2: both MUST be supported)
        confirmed = hint_matches  # a valid ID token of the signed-in user is proof enough (no confirmation)
    if user is not None and not confirmed:
        action = "/oauth2/logout" + ("?" + urlencode(_request_params(), doseq=True) if _request_params() else "")
        resp = make_response(render_template("oauth/logout.html", form=ActionForm(), action=action,
                                             client=req.client))
        if req.redirect_uri:
            resp.headers["Content-Security-Policy"] = _csp_for(req.redirect_uri)
        return resp
    if user is not None:
        services().sessions.revoke(user, session.id, "rp_logout")  # the listener revokes the session's tokens
        p.record("oauth:logout:rp", "success", user_id=user.id,
                 client_id=req.client.get_client_id() if req.client else None)
    if req.redirect_uri and (req.id_token_claims is not None):
        resp = redirect(req.redirect_uri)
    else:
        resp = make_response(render_template("message.html", title="Signed out", message="You are signed out."))
    clear_session_cookie(resp)
    return resp


# --- the login page's CSP when it leads back into an authorization ------------------------------------------------------
@web.after_app_request
def _login_form_action(resp):
    """/login?next=/oauth2/authorize…: the login form's POST ends, through redirects, at the client's redirect URI.

    Browsers check those redirects against the login page's CSP form-action, so allow exactly that client's
    registered redirect origin — looked up, never taken from the request unchecked.
    """
    if request.endpoint != "web.login" or "Content-Security-Policy" in resp.headers:
        return resp
    nxt = request.args.get("next", "")
    if not nxt.startswith("/oauth2/authorize?"):
        return resp
    from urllib.parse import parse_qs

    q = parse_qs(urlsplit(nxt).query)
    try:
        client = provider().clients.get((q.get("client_id") or [""])[0])
    except Exception:  # noqa: BLE001 - a header tweak must never break the login page; default CSP stays
        return resp
    uri = (q.get("redirect_uri") or [""])[0]
    if client is not None and uri and client.check_redirect_uri(uri):
        resp.headers["Content-Security-Policy"] = _csp_for(uri)
    return resp


__all__ = ["api", "web", "ALLOWED_ALGS"]
