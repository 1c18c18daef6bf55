"""SSF 1.0 transmitter: streams, subjects, events mapped from the audit log, SETs (RFC 8417) signed with the
provider's keys, push (RFC 8935) through the outbox worker and poll (RFC 8936) from the outbox table.

Flow: an audited action (``audit.record``) → ``Transmitter.on_audit`` (an ``audit.on_record`` listener, inside the
audit transaction) maps the tag to CAEP/RISC events (``EVENT_MAP``), finds the streams that have the user as a
subject and deliver that event type, and enqueues one outbox row per (stream, event) with the SET's claims. The SET
is signed when it leaves: by the push handler (kind ``ssf_push``) or by the poll endpoint (kind ``ssf_poll``), so the
audit transaction pays no signature and a key rotation in between is harmless. The jti is fixed at enqueue time.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from sqlalchemy import delete, select, update

from authsvc.models import OAuthConsent, User
from authsvc.models.signals import OutboxItem, SsfStream, SsfSubject
from authsvc.signals.outbox import Defer, Drop, Item, new_jti

SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
VERIFICATION = SSF + "verification"
STREAM_UPDATED = SSF + "stream-updated"
SET_TYP = "secevent+jwt"
MIN_VERIFICATION_INTERVAL = 10  # seconds (SSF §8.1.1: faster verification requests get 429)
STATUSES = ("enabled", "paused", "disabled")
PAUSED_RECHECK = 5.0  # seconds: a held event of a paused stream looks again this often

_u = "user"
# audit tag → [(event type, event claims, initiating_entity)], for events with outcome "success" and a subject_id.
EVENT_MAP: dict[str, list[tuple[str, dict, str]]] = {
    # CAEP 1.0 §3.1 session-revoked: every way authsvc ends sessions
    "account:logout:success": [(CAEP + "session-revoked", {}, _u)],
    "account:session:revoke": [(CAEP + "session-revoked", {}, _u)],
    "account:session:revoke_all": [(CAEP + "session-revoked", {}, _u)],
    "account:session:revoke_others": [(CAEP + "session-revoked", {}, _u)],
    "admin:user:sessions_revoke": [(CAEP + "session-revoked", {}, "admin")],
    "account:compromise:reported": [(CAEP + "session-revoked", {}, _u),
                                    (RISC + "account-credential-change-required", {}, _u)],
    "session:drift:end": [(CAEP + "session-revoked", {}, "policy")],
    "session:dbsc:violation": [(CAEP + "session-revoked", {}, "policy")],
    # CAEP §3.3 credential-change
    "account:password:change": [(CAEP + "credential-change", {"credential_type": "password", "change_type": "update"},
                                 _u)],
    "account:reset:success": [(CAEP + "credential-change", {"credential_type": "password", "change_type": "update"},
                               _u)],
    "mfa:totp:enrol": [(CAEP + "credential-change", {"credential_type": "app", "change_type": "create"}, _u)],
    "mfa:totp:remove": [(CAEP + "credential-change", {"credential_type": "app", "change_type": "delete"}, _u)],
    "mfa:webauthn:register": [(CAEP + "credential-change", {"credential_type": "fido2-roaming",
                                                            "change_type": "create"}, _u)],
    "mfa:webauthn:remove": [(CAEP + "credential-change", {"credential_type": "fido2-roaming",
                                                          "change_type": "delete"}, _u)],
    # CAEP §3.4 assurance-level-change: a step-up to AAL2
    "mfa:stepup:success": [(CAEP + "assurance-level-change", {"namespace": "NIST-AAL", "current_level": "nist-aal2",
                                                              "previous_level": "nist-aal1",
                                                              "change_direction": "increase"}, _u)],
    # CAEP §3.2 token-claims-change: the email_verified claim apps hold in ID tokens changed
    "account:email:verified": [(CAEP + "token-claims-change", {"claims": {"email_verified": True}}, _u)],
    # RISC 1.0
    "admin:user:disable": [(RISC + "account-disabled", {}, "admin")],
    "admin:user:enable": [(RISC + "account-enabled", {}, "admin")],
    "account:delete:success": [(RISC + "account-purged", {}, _u)],
    "account:password:breached": [(RISC + "credential-compromise", {"credential_type": "password"}, "policy")],
    "admin:user:password_change_required": [(RISC + "account-credential-change-required", {}, "admin")],
    # A RISC signal from our upstream made us end sessions and switch off the password (authsvc.signals.receiver).
    "ssf:receiver:credential_compromise": [(CAEP + "session-revoked", {}, "policy"),
                                           (RISC + "account-credential-change-required", {}, "policy")],
    "ssf:receiver:account_disabled": [(CAEP + "session-revoked", {}, "policy"),
                                      (RISC + "account-credential-change-required", {}, "policy")],
    # No authsvc flow changes an e-mail address today; a future one records this tag with {"new_value": ...}.
    "account:email:change": [(RISC + "identifier-changed", {}, _u)],
}
EVENTS_SUPPORTED = sorted({t for events in EVENT_MAP.values() for t, _, _ in events})


class StreamError(Exception):
    """A refused management request: HTTP ``status`` and a description for the Receiver."""

    def __init__(self, status: int, description: str, error: str = "invalid_request"):
        super().__init__(description)
        self.status = status
        self.description = description
        self.error = error


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class _Sealer:
    """AES-256-GCM for the push Authorization header a Receiver gives us (a credential of theirs: never stored in
    clear, never echoed back). Key derived from SECRET_KEY; aad = stream id, so a value cannot move to another row."""

    def __init__(self, secret: bytes):
        self._aead = AESGCM(hashlib.sha256(b"authsvc ssf authorization header v1|" + secret).digest())

    def seal(self, stream_id: str, value: str) -> str:
        nonce = secrets.token_bytes(12)
        return _b64(nonce + self._aead.encrypt(nonce, value.encode(), stream_id.encode()))

    def open(self, stream_id: str, blob: str) -> str:
        raw = _unb64(blob)
        return self._aead.decrypt(raw[:12], raw[12:], stream_id.encode()).decode()


def public_address_only(host: str) -> None:
    """Refuse a push endpoint host that resolves to a loopback, private, link-local, multicast or reserved
    address (SSRF: the worker would POST into our own network). Raises StreamError(400)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise StreamError(400, "delivery.endpoint_url: the host does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise StreamError(400, "delivery.endpoint_url: the host resolves to a non-public address")


def check_push_url(url: Any, allow_insecure: bool) -> str:
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise StreamError(400, "delivery.endpoint_url: a URL string of at most 2048 characters is required")
    if any(ord(c) < 0x21 or ord(c) > 0x7e for c in url):
        raise StreamError(400, "delivery.endpoint_url: ASCII only, no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise StreamError(400, "delivery.endpoint_url: not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise StreamError(400, "delivery.endpoint_url: an absolute https URL is required")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise StreamError(400, "delivery.endpoint_url: no user information in the URL")
    if parts.fragment or "#" in url:
        raise StreamError(400, "delivery.endpoint_url: no fragment")
    if not allow_insecure:
        if parts.scheme != "https":
            raise StreamError(400, "delivery.endpoint_url: push delivery requires https (RFC 8935 §5.1: TLS)")
        public_address_only(parts.hostname)
    _ = port
    return url


@dataclass
class _Auth:
    client_id: str


class Transmitter:
    def __init__(self, app, db, clock, audit, provider, signals_settings, secret: bytes, redis_getter):
        self.app = app
        self.db = db
        self.clock = clock
        self.audit = audit
        self.provider = provider
        self.settings = signals_settings
        self.sealer = _Sealer(secret)
        self.redis = redis_getter
        self._local = threading.local()

    # --- identity ---------------------------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def configuration(self) -> dict:
        """SSF 1.0 §7.1 Transmitter Configuration Metadata."""
        iss = self.issuer
        return {
            "spec_version": "1_0",
            "issuer": iss,
            "jwks_uri": iss + "/oauth2/jwks",
            "delivery_methods_supported": [PUSH, POLL],
            "configuration_endpoint": iss + "/ssf/stream",
            "status_endpoint": iss + "/ssf/status",
            "add_subject_endpoint": iss + "/ssf/subjects:add",
            "remove_subject_endpoint": iss + "/ssf/subjects:remove",
            "verification_endpoint": iss + "/ssf/verify",
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
            "default_subjects": "NONE",
        }

    # --- streams ----------------------------------------------------------------------------------------------------
    def poll_url(self, stream_id: str) -> str:
        return f"{self.issuer}/ssf/poll/{stream_id}"

    def events_delivered(self, row: SsfStream) -> list[str]:
        requested = json.loads(row.events_requested or "[]")
        return [e for e in EVENTS_SUPPORTED if e in requested]

    def config_of(self, row: SsfStream) -> dict:
        """SSF 1.0 §8.1.1 Stream Configuration (the push Authorization header is never echoed back)."""
        out = {"stream_id": row.id, "iss": self.issuer, "aud": row.client_id, "events_supported": EVENTS_SUPPORTED,
               "events_requested": json.loads(row.events_requested or "[]"),
               "events_delivered": self.events_delivered(row),
               "delivery": {"method": row.method,
                            "endpoint_url": row.endpoint_url if row.method == PUSH else self.poll_url(row.id)},
               "min_verification_interval": MIN_VERIFICATION_INTERVAL}
        if row.description:
            out["description"] = row.description
        return out

    def _expected(self, row: SsfStream | None) -> dict:
        if row is None:
            return {"iss": self.issuer, "events_supported": EVENTS_SUPPORTED,
                    "min_verification_interval": MIN_VERIFICATION_INTERVAL}
        c = self.config_of(row)
        return {k: c[k] for k in ("stream_id", "iss", "aud", "events_supported", "events_delivered",
                                  "min_verification_interval")}

    def _apply(self, row: SsfStream, body: dict, *, replace: bool, creating: bool) -> None:
        """Receiver-Supplied properties from ``body`` onto ``row``; Transmitter-Supplied ones must match."""
        expected = self._expected(None if creating else row)
        for key, value in expected.items():
            if key in body and body[key] != value:
                raise StreamError(400, f"{key}: a Transmitter-Supplied property that does not match")
        if "aud" in body and creating:
            raise StreamError(400, "aud: a Transmitter-Supplied property (the receiver's client_id)")
        if "events_requested" in body or replace:
            ev = body.get("events_requested", [])
            if not isinstance(ev, list) or len(ev) > 64 or not all(isinstance(e, str) and len(e) <= 256 for e in ev):
                raise StreamError(400, "events_requested: an array of at most 64 event type URIs")
            row.events_requested = json.dumps(list(dict.fromkeys(ev)))  # unknown values kept, never delivered
        if "description" in body or replace:
            d = body.get("description")
            if d is not None and not isinstance(d, str):
                raise StreamError(400, "description: a string")
            d = (d or "").replace("\x00", "")[:255]
            row.description = d or None
        if "delivery" in body or replace or creating:
            delivery = body.get("delivery")
            if delivery is None:
                delivery = {"method": POLL}  # SSF 1.0 §8.1.1.1: no delivery → poll
            if not isinstance(delivery, dict):
                raise StreamError(400, "delivery: an object")
            method = delivery.get("method")
            if method == PUSH:
                url = check_push_url(delivery.get("endpoint_url"), self.settings.signals_allow_insecure_push)
                auth = delivery.get("authorization_header")
                if auth is not None and (not isinstance(auth, str) or len(auth) > 2048 or
                                         any(c in auth for c in "\r\n\x00")):
                    raise StreamError(400, "delivery.authorization_header: one header value, at most 2048 characters")
                row.method, row.endpoint_url = PUSH, url
                row.authorization_enc = self.sealer.seal(row.id, auth) if auth else None
            elif method == POLL:
                url = delivery.get("endpoint_url")
                if url is not None and (creating or url != self.poll_url(row.id)):
                    raise StreamError(400, "delivery.endpoint_url: for poll delivery the Transmitter supplies it")
                row.method, row.endpoint_url, row.authorization_enc = POLL, None, None
            else:
                raise StreamError(400, f"delivery.method: one of {PUSH}, {POLL}")

    def _body(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise StreamError(400, "the request body must be a JSON object")
        return body

    def create(self, auth: _Auth, body: Any) -> dict:
        body = self._body(body)
        s = self.db.session
        n = len(s.execute(select(SsfStream.id).where(SsfStream.client_id == auth.client_id)).all())
        if n >= self.settings.signals_max_streams_per_client:
            raise StreamError(409, f"this receiver already has {n} streams (the most allowed)", "conflict")
        now = self.clock.now()
        row = SsfStream(id=secrets.token_urlsafe(16), client_id=auth.client_id, status="enabled", created_at=now,
                        updated_at=now, events_requested="[]")
        self._apply(row, body, replace=False, creating=True)
        s.add(row)
        self.audit.record("ssf:stream:create", "success", details={"client_id": auth.client_id,
                                                                    "stream": row.id[:8], "method": row.method},
                          commit=False)
        s.commit()
        return self.config_of(row)

    def stream(self, auth: _Auth, stream_id: Any) -> SsfStream:
        """The caller's stream, or 404: another receiver's stream id is indistinguishable from a missing one."""
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 64:
            raise StreamError(404, "no such stream for this receiver", "not_found")
        row = self.db.session.get(SsfStream, stream_id)
        if row is None or row.client_id != auth.client_id:
            raise StreamError(404, "no such stream for this receiver", "not_found")
        return row

    def streams(self, auth: _Auth) -> list[dict]:
        rows = self.db.session.execute(select(SsfStream).where(SsfStream.client_id == auth.client_id)
                                       .order_by(SsfStream.created_at)).scalars()
        return [self.config_of(r) for r in rows]

    def update(self, auth: _Auth, body: Any, *, replace: bool) -> dict:
        body = self._body(body)
        row = self.stream(auth, body.get("stream_id"))
        self._apply(row, body, replace=replace, creating=False)
        row.updated_at = self.clock.now()
        self.audit.record("ssf:stream:update", "success", details={"client_id": auth.client_id, "stream": row.id[:8],
                                                                    "replace": replace}, commit=False)
        self.db.session.commit()
        return self.config_of(row)

    def delete(self, auth: _Auth, stream_id: Any) -> None:
        row = self.stream(auth, stream_id)
        s = self.db.session
        # Undelivered events of the stream go with it (nobody can ever receive them).
        s.execute(update(OutboxItem).where(OutboxItem.target == row.id, OutboxItem.kind.in_(("ssf_push", "ssf_poll")),
                                           OutboxItem.next_attempt_at.is_not(None))
                  .values(next_attempt_at=None, failed_at=self.clock.now(), last_error="stream deleted"))
        s.delete(row)
        self.audit.record("ssf:stream:delete", "success", details={"client_id": auth.client_id, "stream": row.id[:8]},
                          commit=False)
        s.commit()

    def status(self, auth: _Auth, stream_id: Any) -> dict:
        row = self.stream(auth, stream_id)
        out = {"stream_id": row.id, "status": row.status}
        if row.status_reason:
            out["reason"] = row.status_reason
        return out

    def set_status(self, auth: _Auth, body: Any) -> dict:
        body = self._body(body)
        row = self.stream(auth, body.get("stream_id"))
        status, reason = body.get("status"), body.get("reason")
        if status not in STATUSES:
            raise StreamError(400, f"status: one of {', '.join(STATUSES)}")
        if reason is not None and not isinstance(reason, str):
            raise StreamError(400, "reason: a string")
        s = self.db.session
        if status == "disabled" and row.status != "disabled":
            # SSF §8.1.2: a disabled stream does not hold events: what was waiting is dropped.
            s.execute(update(OutboxItem).where(OutboxItem.target == row.id, OutboxItem.next_attempt_at.is_not(None),
                                               OutboxItem.kind.in_(("ssf_push", "ssf_poll")))
                      .values(next_attempt_at=None, failed_at=self.clock.now(), last_error="stream disabled"))
        row.status, row.status_reason = status, (reason or "").replace("\x00", "")[:255] or None
        row.updated_at = self.clock.now()
        self.audit.record("ssf:stream:status", "success", details={"client_id": auth.client_id, "stream": row.id[:8],
                                                                    "status": status}, commit=False)
        s.commit()
        return self.status(auth, row.id)

    # --- subjects ---------------------------------------------------------------------------------------------------
    def _user_for(self, subject: Any) -> tuple[User | None, dict]:
        """RFC 9493 subject → (our user or None, the normalised subject). Raises 400 on a malformed subject."""
        if not isinstance(subject, dict) or not isinstance(subject.get("format"), str):
            raise StreamError(400, "subject: an RFC 9493 Subject Identifier object")
        fmt = subject["format"]
        s = self.db.session

        def field(name):
            v = subject.get(name)
            if not isinstance(v, str) or not v or len(v) > 320:
                raise StreamError(400, f"subject.{name}: a non-empty string")
            return v

        if fmt == "email":
            email = field("email")
            user = s.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
            return user, {"format": "email", "email": email}
        if fmt == "iss_sub":
            iss, sub = field("iss"), field("sub")
            user = s.execute(select(User).where(User.sub == sub)).scalar_one_or_none() if iss == self.issuer else None
            return user, {"format": "iss_sub", "iss": iss, "sub": sub}
        if fmt == "opaque":
            oid = field("id")
            user = s.execute(select(User).where(User.sub == oid)).scalar_one_or_none()
            return user, {"format": "opaque", "id": oid}
        raise StreamError(400, "subject.format: one of email, iss_sub, opaque")

    def _consented(self, user: User, client_id: str) -> bool:
        return self.db.session.execute(select(OAuthConsent.id).where(
            OAuthConsent.user_id == user.id, OAuthConsent.client_id == client_id,
            OAuthConsent.revoked_at.is_(None))).first() is not None

    def add_subject(self, auth: _Auth, body: Any) -> None:
        """SSF §8.1.3.2. Only users who consented to this receiver (an OAuth consent to the same client) are added;
        any other subject is silently ignored with the same 200 (the spec allows it), so the endpoint tells nobody
        which e-mail addresses have accounts here."""
        body = self._body(body)
        row = self.stream(auth, body.get("stream_id"))
        if "verified" in body and not isinstance(body["verified"], bool):
            raise StreamError(400, "verified: a boolean")
        user, subject = self._user_for(body.get("subject"))
        if user is None or not self._consented(user, auth.client_id):
            return
        s = self.db.session
        existing = s.execute(select(SsfSubject).where(SsfSubject.stream_id == row.id,
                                                      SsfSubject.user_id == user.id)).scalar_one_or_none()
        if existing is None:
            s.add(SsfSubject(stream_id=row.id, user_id=user.id, subject=json.dumps(subject),
                             created_at=self.clock.now()))
        else:
            existing.subject = json.dumps(subject)
        s.commit()

    def remove_subject(self, auth: _Auth, body: Any) -> None:
        body = self._body(body)
        row = self.stream(auth, body.get("stream_id"))
        user, _ = self._user_for(body.get("subject"))
        if user is not None:
            self.db.session.execute(delete(SsfSubject).where(SsfSubject.stream_id == row.id,
                                                             SsfSubject.user_id == user.id))
            self.db.session.commit()

    # --- verification -----------------------------------------------------------------------------------------------
    def verify(self, auth: _Auth, body: Any) -> None:
        body = self._body(body)
        row = self.stream(auth, body.get("stream_id"))
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 256):
            raise StreamError(400, "state: a string of at most 256 characters")
        now = self.clock.now()
        if row.verified_at is not None and (now - row.verified_at).total_seconds() < MIN_VERIFICATION_INTERVAL:
            raise StreamError(429, f"at most one verification request per {MIN_VERIFICATION_INTERVAL} s",
                              "too_many_requests")
        row.verified_at = now
        event = {"state": state} if state is not None else {}
        self._enqueue(row, {"format": "opaque", "id": row.id}, VERIFICATION, event)
        self.db.session.commit()

    # --- events -----------------------------------------------------------------------------------------------------
    def _enqueue(self, row: SsfStream, sub_id: dict, event_type: str, event: dict) -> None:
        self._enqueue_in(self.db.session, row, sub_id, event_type, event)

    def on_audit(self, ev, session) -> None:
        """``audit.on_record`` listener: runs in the audit transaction. A dict lookup for every tag that maps to no
        SSF event (nearly all of them, logins included), one indexed query otherwise."""
        mapped = EVENT_MAP.get(ev.tag)
        if mapped is None or ev.outcome != "success" or not ev.subject_id:
            return
        rows = session.execute(select(SsfSubject, SsfStream).join(SsfStream, SsfStream.id == SsfSubject.stream_id)
                               .where(SsfSubject.user_id == ev.subject_id, SsfStream.status != "disabled")).all()
        if not rows:
            return
        details = {}
        if ev.details:
            try:
                details = json.loads(ev.details)
            except ValueError:
                details = {}
        ts = int(ev.occurred_at.timestamp())
        iat = int(self.clock.timestamp())
        batch = []
        for subj, stream in rows:
            delivered = set(self.events_delivered(stream))
            sub_id = json.loads(subj.subject)
            for event_type, claims, initiator in mapped:
                if event_type not in delivered:
                    continue
                event = dict(claims, event_timestamp=ts, initiating_entity=initiator)
                if event_type == RISC + "identifier-changed" and isinstance(details.get("new_value"), str):
                    event["new-value"] = details["new_value"]
                if ev.reason:
                    event["reason_admin"] = {"en": ev.reason}
                jti = new_jti()
                batch.append(("ssf_push" if stream.method == PUSH else "ssf_poll", stream.id,
                              {"jti": jti, "iat": iat, "aud": stream.client_id, "sub_id": sub_id,
                               "events": {event_type: event}}, jti))
        from authsvc.signals import outbox

        outbox.enqueue_many(session, batch, now=self.clock.now())
        if ev.tag == "account:delete:success":
            # Account purged: its subject rows (which hold its e-mail address) go in the same transaction.
            session.execute(delete(SsfSubject).where(SsfSubject.user_id == ev.subject_id))

    def _enqueue_in(self, session, row, sub_id, event_type, event) -> None:
        from authsvc.signals import outbox

        jti = new_jti()
        claims = {"jti": jti, "iat": int(self.clock.timestamp()), "aud": row.client_id, "sub_id": sub_id,
                  "events": {event_type: event}}
        outbox.enqueue(session, "ssf_push" if row.method == PUSH else "ssf_poll", row.id, claims, jti=jti,
                       now=self.clock.now())

    # --- SETs -------------------------------------------------------------------------------------------------------
    def sign(self, claims: dict) -> str:
        """RFC 8417 SET with SSF 1.0 §4 profile: typ secevent+jwt, iss = our issuer, no sub, no exp."""
        key, kid, alg = self.provider.keys.signing_key()
        return jwt.encode({"alg": alg, "kid": kid, "typ": SET_TYP}, {"iss": self.issuer, **claims}, key,
                          algorithms=[alg])

    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.trust_env = False  # no proxy from the environment: the endpoint is the receiver's, as configured
        return s

    def push(self, item: Item) -> None:
        """Outbox handler for ``ssf_push`` (RFC 8935 §2). 202 → delivered; 400 with an RFC 8935 error → Drop (the
        receiver refused this SET; resending it cannot help); anything else (5xx, timeout, refused) → retry."""
        row = self.db.session.get(SsfStream, item.target)
        if row is None:
            raise Drop("stream deleted")
        if row.status == "disabled":
            raise Drop("stream disabled")
        if row.status == "paused":
            raise Defer(PAUSED_RECHECK)  # SSF §8.1.2: held, delivered (in order) once enabled
        if row.method != PUSH or not row.endpoint_url:
            raise Drop("stream no longer uses push delivery")
        if not self.settings.signals_allow_insecure_push:
            host = urlsplit(row.endpoint_url).hostname or ""
            try:
                public_address_only(host)  # again at delivery: DNS may have changed since the stream was made
            except StreamError as exc:
                raise Drop(exc.description) from None
        headers = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}
        if row.authorization_enc:
            headers["Authorization"] = self.sealer.open(row.id, row.authorization_enc)
        token = self.sign(item.payload)
        self.db.session.rollback()  # no transaction held open across the network call
        timeout = self.settings.signals_push_timeout
        resp = self._http().post(row.endpoint_url, data=token, headers=headers, timeout=(timeout, timeout),
                                 allow_redirects=False, stream=True)
        try:
            body = resp.raw.read(4096, decode_content=True) if resp.status_code == 400 else b""
        finally:
            resp.close()
        if resp.status_code in (200, 202):  # RFC 8935 §2.2: 202 Accepted (200 tolerated)
            return
        if resp.status_code == 400:
            try:
                err = json.loads(body).get("err", "invalid_request")
            except (ValueError, AttributeError):
                err = "invalid_request"
            raise Drop(f"receiver refused the SET: {str(err)[:64]}")
        raise ConnectionError(f"HTTP {resp.status_code}")

    # --- poll (RFC 8936) --------------------------------------------------------------------------------------------
    def poll(self, auth: _Auth, stream_id: str, body: Any) -> dict:
        body = self._body(body)
        row = self.stream(auth, stream_id)
        if row.method != POLL:
            raise StreamError(400, "this stream uses push delivery")
        ack, errs = body.get("ack", []), body.get("setErrs", {})
        max_events = body.get("maxEvents", 100)
        if not isinstance(ack, list) or len(ack) > 1000 or not all(isinstance(j, str) and len(j) <= 64 for j in ack):
            raise StreamError(400, "ack: an array of at most 1000 jti strings")
        if not isinstance(errs, dict) or len(errs) > 1000 or not all(
                isinstance(k, str) and len(k) <= 64 and isinstance(v, dict) for k, v in errs.items()):
            raise StreamError(400, "setErrs: an object of at most 1000 jti → {err, description}")
        if isinstance(max_events, bool) or not isinstance(max_events, int) or not 0 <= max_events <= 1000:
            raise StreamError(400, "maxEvents: an integer from 0 to 1000")
        if "returnImmediately" in body and not isinstance(body["returnImmediately"], bool):
            raise StreamError(400, "returnImmediately: a boolean")
        s, now = self.db.session, self.clock.now()
        mine = (OutboxItem.kind == "ssf_poll", OutboxItem.target == row.id)
        if ack:
            # Only this stream's rows, only pending ones: an ack replayed (or naming another stream's jti) is a
            # no-op, never a state change of something that is not the caller's.
            s.execute(update(OutboxItem).where(*mine, OutboxItem.jti.in_(ack), OutboxItem.next_attempt_at.is_not(None))
                      .values(delivered_at=now, next_attempt_at=None, attempts=OutboxItem.attempts + 1))
        for jti, err in errs.items():
            text = f"receiver error: {str(err.get('err', ''))[:64]} {str(err.get('description', ''))[:120]}"
            s.execute(update(OutboxItem).where(*mine, OutboxItem.jti == jti, OutboxItem.next_attempt_at.is_not(None))
                      .values(failed_at=now, next_attempt_at=None, last_error=text[:255]))
        sets = {}
        more = False
        if max_events and row.status == "enabled":
            pending = s.execute(select(OutboxItem.jti, OutboxItem.payload).where(*mine,
                                                                                 OutboxItem.next_attempt_at.is_not(None))
                                .order_by(OutboxItem.id).limit(max_events + 1)).all()
            more = len(pending) > max_events
            for jti, payload in pending[:max_events]:
                sets[jti] = self.sign(json.loads(payload))
        s.commit()
        out = {"sets": sets}
        if more:
            out["moreAvailable"] = True
        return out
