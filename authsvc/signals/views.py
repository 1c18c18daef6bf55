"""HTTP side of the SSF transmitter (SSF 1.0 §7-8, RFC 8936) and of the RISC receiver (RFC 8935 recipient).

Management requests are authorised by an access token the Receiver got with its own client credentials
(``client_credentials`` grant at /oauth2/token, sent as ``Authorization: Bearer``): the stream belongs to that client,
and every lookup is by (stream_id, client_id), so another receiver's stream id answers 404 exactly like a made-up one.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from authsvc.signals.ssf import StreamError, _Auth
from authsvc.oauth.views import _oauth_error as _error  # SSF receivers are OAuth clients: the same error shape

bp = Blueprint("ssf", __name__)
MAX_BODY = 64 * 1024  # a stream configuration is a few hundred bytes; a poll with 1000 acks ~70 KB at most
MAX_POLL_BODY = 256 * 1024


def transmitter():
    return current_app.extensions["authsvc.ssf"]




def _unauthorized(description: str, error: str = "invalid_token"):
    return _error(401, error, description,
                  {"WWW-Authenticate": f'Bearer realm="authsvc", error="{error}", error_description="{description}"'})


def _receiver() -> _Auth | tuple:
    scheme, _, tok = request.headers.get("Authorization", "").partition(" ")
    tok = tok.strip()
    if scheme.lower() != "bearer" or not tok or len(tok) > 4096:
        return _unauthorized("Send an access token from the client_credentials grant as 'Authorization: Bearer'.",
                             "invalid_request")
    p = current_app.extensions["authsvc.oauth"]
    rec = p.resolve_access(tok)
    if rec is None:
        return _unauthorized("The access token is invalid, expired or revoked.")
    if rec.get("jkt"):
        return _unauthorized("DPoP-bound tokens are not accepted here; use a bearer token.")
    if rec.get("uid"):
        return _unauthorized("Stream management needs the receiver's own token (client_credentials), "
                             "not a user's.")
    if p.issuer not in (rec.get("aud") or "").split():
        return _unauthorized("The access token is not meant for this transmitter (aud).")
    client = p.clients.get(rec["cid"])
    if client is None or client.is_public:
        return _unauthorized("The access token's client no longer exists or is not confidential.")
    return _Auth(client.client_id)


def _json(limit: int = MAX_BODY):
    if request.content_length is not None and request.content_length > limit:
        raise StreamError(413, f"the request body is limited to {limit} bytes", "request_too_large")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise StreamError(413, f"the request body is limited to {limit} bytes", "request_too_large")
    if not raw:
        return {}
    if request.mimetype not in ("application/json", ""):
        raise StreamError(415, "send application/json", "unsupported_media_type")
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise StreamError(400, "the request body is not valid JSON")
    return data


def _managed(fn):
    """Authorise, run, turn StreamError into its JSON status (never a 500 for bad input)."""
    def wrapper(*args, **kwargs):
        auth = _receiver()
        if not isinstance(auth, _Auth):
            return auth
        try:
            return fn(auth, *args, **kwargs)
        except StreamError as exc:
            return _error(exc.status, exc.error, exc.description)
    wrapper.__name__ = fn.__name__
    return wrapper


def _ok(payload, status: int = 200):
    resp = jsonify(payload)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _no_content():
    return "", 204, {"Cache-Control": "no-store"}


@bp.get("/.well-known/ssf-configuration")
def ssf_configuration():
    resp = jsonify(transmitter().configuration())
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


@bp.route("/ssf/stream", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
@_managed
def stream(auth):
    t = transmitter()
    if request.method == "POST":
        return _ok(t.create(auth, _json()), 201)
    if request.method == "GET":
        sid = request.args.get("stream_id")
        if sid is None:
            return _ok(t.streams(auth))  # SSF §8.1.1.2: no stream_id → every stream of this receiver (maybe [])
        return _ok(t.config_of(t.stream(auth, sid)))
    if request.method in ("PATCH", "PUT"):
        return _ok(t.update(auth, _json(), replace=request.method == "PUT"))
    t.delete(auth, request.args.get("stream_id"))
    return _no_content()


@bp.route("/ssf/status", methods=["GET", "POST"])
@_managed
def status(auth):
    t = transmitter()
    if request.method == "GET":
        return _ok(t.status(auth, request.args.get("stream_id")))
    return _ok(t.set_status(auth, _json()))


@bp.post("/ssf/subjects:add")
@_managed
def add_subject(auth):
    transmitter().add_subject(auth, _json())
    return _ok({})


@bp.post("/ssf/subjects:remove")
@_managed
def remove_subject(auth):
    transmitter().remove_subject(auth, _json())
    return _no_content()


@bp.post("/ssf/verify")
@_managed
def verify(auth):
    transmitter().verify(auth, _json())
    return _no_content()


@bp.post("/ssf/poll/<stream_id>")
@_managed
def poll(auth, stream_id):
    return _ok(transmitter().poll(auth, stream_id, _json(MAX_POLL_BODY)))
