"""Federated sign-in without pre-hijacking or nOAuth (issue 17).

Rules (each is a named test in tests/functional/test_federation.py; see docs/SECURITY.md "Federated sign-in"):

* An upstream identity is found **only** by ``(issuer, subject)``. The e-mail an upstream sends is never a key: a
  provider that lets users type any address (nOAuth) or does not verify it cannot reach another account with it.
* A new identity whose address belongs to an existing, verified account is **not merged**: the user proves that
  account (password and its factors, or a passkey — the normal sign-in) and then confirms the link.
* An account is created from an upstream identity only when the provider says the address is verified
  (``email_verified`` is true — absent counts as false). An unverified password registration of the same address is
  discarded then, with every session and pending change it had (classic-federated merge, unexpired session).
* Only a signed-in, verified account with a fresh proof links a new identity (trojan identifier).
* The callback is single-use (state GETDEL), bound to the browser that started it, to the provider it was started
  for (mix-up) and, when the provider says it sends one, to its ``iss`` (RFC 9207); the ID token is checked by
  Authlib (signature from the JWKS, iss, aud, exp, nonce), the code exchange uses PKCE S256.
* A federated login goes through the same stages as a password login: throttle precheck, risk score with reasons,
  second factor by the same rules (upstream amr counts only for a provider the operator trusts), session issue with
  receipt and audit in one transaction, new-sign-in notice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import requests
from authlib.integrations.base_client import OAuthError
from authlib.common.errors import AuthlibBaseError
from joserfc.errors import JoseError as JoseRfcError
from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from authsvc.accounts import login as L
from authsvc.accounts.login import Decision, RequestContext, normalize_email
from authsvc.accounts.service import valid_email
from authsvc.errors import DependencyUnavailable, ServiceError
from authsvc.federation import providers as P
from authsvc.i18n import N_
from authsvc.i18n.mail import mail_language
from authsvc.models import FederatedIdentity, UpstreamProvider, User
from authsvc.sessions import Generation

STATE_TTL = 600
LINK_TTL = 900
# RFC 8176 values that name a second factor (or a multi-factor login) at the upstream.
MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm", "pin"})


class FederationRefused(ServiceError):
    code = "federation_refused"

    def __init__(self, message: str, status: int = 400, **data):
        super().__init__(message, **data)
        self.status = status


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Upstream:
    """What the provider proved about the user, after every check."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    amr: tuple[str, ...] = ()
    acr: str | None = None
    name: str | None = None


@dataclass
class Outcome:
    kind: str  # login | link_needed | linked
    result: L.LoginResult | None = None
    link_token: str | None = None
    next: str | None = None


class FederationService:
    def __init__(self, *, db, redis_getter, login, mfa, sessions, audit, clock, settings, mailer, box, app):
        self.db, self._redis, self.login, self.mfa = db, redis_getter, login, mfa
        self.sessions, self.audit, self.clock, self.settings = sessions, audit, clock, settings
        self.mailer, self.box = mailer, box
        self.clients = P.ClientCache(app)

    # --- providers ------------------------------------------------------------------------------------------------
    def providers(self, *, enabled_only: bool = True) -> list[UpstreamProvider]:
        q = select(UpstreamProvider).order_by(UpstreamProvider.name)
        if enabled_only:
            q = q.where(UpstreamProvider.enabled.is_(True))
        return list(self.db.session.execute(q).scalars())

    def provider(self, slug: str) -> UpstreamProvider | None:
        if not isinstance(slug, str) or not P.SLUG_RE.match(slug):
            return None
        return self.db.session.execute(select(UpstreamProvider).where(UpstreamProvider.slug == slug)) \
            .scalar_one_or_none()

    def add_provider(self, *, slug: str, kind: str, client_id: str, client_secret: str | None = None,
                     name: str | None = None, issuer: str | None = None, discovery_url: str | None = None,
                     scopes: str | None = None, trust_mfa: bool = False) -> UpstreamProvider:
        if kind not in P.KINDS:
            raise FederationRefused(f"kind must be one of {', '.join(P.KINDS)}", field="kind")
        if not isinstance(slug, str) or not P.SLUG_RE.match(slug):
            raise FederationRefused("slug: lower-case letters, digits and '-', at most 32", field="slug")
        pre = P.preset(kind)
        issuer = issuer or (pre.issuer if pre else None)
        discovery_url = discovery_url or (pre.discovery_url if pre else None)
        if not discovery_url and issuer and kind != "github":
            discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        if not issuer or not client_id or (kind != "github" and not discovery_url):
            raise FederationRefused("issuer (or discovery URL) and client id are required", field="issuer")
        for url in (issuer, discovery_url):
            if url and not (url.startswith("https://") or url.startswith("http://127.0.0.1")
                            or url.startswith("http://localhost")):
                raise FederationRefused("provider URLs must use https", field="issuer")
        row = UpstreamProvider(slug=slug, kind=kind, name=(name or (pre.name if pre else slug))[:64], issuer=issuer,
                               discovery_url=discovery_url, client_id=client_id, trust_mfa=bool(trust_mfa),
                               scopes=scopes or (pre.scopes if pre else "openid email profile"), enabled=True)
        row.client_secret = self.box.encrypt(client_secret.encode(), context=f"idp:{slug}") if client_secret else None
        self.db.session.add(row)
        try:
            self.db.session.commit()
        except IntegrityError:
            self.db.session.rollback()
            raise FederationRefused("a provider with this slug or issuer exists", field="slug") from None
        self.audit.record("federation:provider:add", "success", details={"slug": slug, "kind": kind,
                                                                        "issuer": issuer, "trust_mfa": trust_mfa})
        return row

    def remove_provider(self, slug: str) -> bool:
        row = self.provider(slug)
        if row is None:
            return False
        n = self.db.session.execute(select(func.count()).select_from(FederatedIdentity)
                                    .where(FederatedIdentity.provider_id == row.id)).scalar()
        self.db.session.execute(delete(FederatedIdentity).where(FederatedIdentity.provider_id == row.id))
        self.db.session.delete(row)
        self.db.session.commit()
        self.audit.record("federation:provider:remove", "success", details={"slug": slug, "identities": n})
        return True

    def _client(self, provider: UpstreamProvider):
        secret = None
        if provider.client_secret:
            from authsvc.mfa.crypto import UnknownKeyVersion

            try:
                secret = self.box.decrypt(provider.client_secret, context=f"idp:{provider.slug}")[0].decode()
            except UnknownKeyVersion as exc:  # the operator removed the key that sealed it: refuse, loudly
                raise DependencyUnavailable("identity provider secret") from exc
        return self.clients.client(provider, secret)

    def redirect_uri(self, provider: UpstreamProvider) -> str:
        return self.settings.base_url.rstrip("/") + f"/federation/{provider.slug}/callback"

    # --- start ---------------------------------------------------------------------------------------------------
    def begin(self, provider: UpstreamProvider, *, browser: str, intent: str = "login", user_id: int | None = None,
              next_url: str | None = None) -> str:
        """The upstream authorization URL (PKCE S256, state, nonce); what the callback needs is kept in Redis under
        the state, bound to this browser and this provider."""
        client = self._client(provider)
        extra = {}
        mode = P.response_mode(provider)
        if mode:
            extra["response_mode"] = mode
        try:
            rv = client.create_authorization_url(self.redirect_uri(provider), **extra)
        except (requests.RequestException, ValueError, RuntimeError) as exc:
            raise DependencyUnavailable("identity provider") from exc
        record = {"pid": provider.id, "nonce": rv.get("nonce"), "cv": rv.get("code_verifier"),
                  "browser": _sha(browser), "intent": intent, "uid": user_id, "next": next_url,
                  "created": self.clock.timestamp()}
        self._redis().set(f"fed:state:{{{_sha(rv['state'])}}}", json.dumps(record), ex=STATE_TTL)
        return rv["url"]

    # --- callback ------------------------------------------------------------------------------------------------
    def callback(self, provider: UpstreamProvider, params: dict, *, browser: str | None, ctx: RequestContext,
                 current_user: User | None, current_session=None) -> Outcome:
        state = params.get("state")
        if not isinstance(state, str) or not (8 <= len(state) <= 256):
            raise self._refuse("missing or malformed state", provider, ctx)
        raw = self._redis().getdel(f"fed:state:{{{_sha(state)}}}")  # single use: a replayed callback finds nothing
        if raw is None:
            raise self._refuse("unknown, expired or already used state", provider, ctx)
        record = json.loads(raw)
        if not browser or not hmac.compare_digest(record["browser"], _sha(browser)):
            raise self._refuse("callback opened in another browser than the one that started it", provider, ctx)
        if record["pid"] != provider.id:
            raise self._refuse("state was issued for another provider (mix-up)", provider, ctx)
        if params.get("error"):
            raise self._refuse("the provider returned an error", provider, ctx,
                               public=N_("The sign-in was cancelled or refused at the provider."))
        upstream = self._exchange(provider, params, record, ctx)
        if record["intent"] == "link":
            return self._link_from_center(provider, upstream, record, ctx, current_user, current_session)
        return self._sign_in(provider, upstream, record, ctx, browser)

    def _exchange(self, provider, params: dict, record: dict, ctx) -> Upstream:
        client = self._client(provider)
        code = params.get("code")
        if not isinstance(code, str) or not (1 <= len(code) <= 2048):
            raise self._refuse("missing code", provider, ctx)
        try:
            if P.is_oidc(provider):
                metadata = client.load_server_metadata()
                iss = params.get("iss")
                # RFC 9207 §2.4: a provider that says it sends iss must send it, and it must be the one we expect.
                if metadata.get("authorization_response_iss_parameter_supported") and not iss:
                    raise self._refuse("authorization response without iss (RFC 9207)", provider, ctx)
                if iss is not None and not (iss == metadata.get("issuer") and self._issuer_ok(provider, iss, None)
                                            or P.TENANT_PLACEHOLDER in provider.issuer):
                    raise self._refuse("authorization response iss is not this provider's (mix-up)", provider, ctx)
            token = client.fetch_access_token(redirect_uri=self.redirect_uri(provider), code=code,
                                              code_verifier=record["cv"])
            if P.is_oidc(provider):
                return self._oidc_identity(client, provider, token, record, ctx, params)
            return self._github_identity(client, token)
        except OAuthError as exc:  # invalid_grant (a replayed or stolen code), invalid_client, ...
            raise self._refuse(f"code exchange refused: {exc.error}", provider, ctx) from None
        except (AuthlibBaseError, JoseRfcError, ValueError, KeyError, TypeError) as exc:
            raise self._refuse(f"ID token rejected: {type(exc).__name__}: {exc}"[:200], provider, ctx) from None
        except requests.RequestException as exc:
            raise DependencyUnavailable("identity provider") from exc

    def _issuer_ok(self, provider, iss, tid) -> bool:
        if P.TENANT_PLACEHOLDER in provider.issuer:
            return P.issuer_matches(provider.issuer, iss, tid)
        return iss == provider.issuer

    def _oidc_identity(self, client, provider, token, record, ctx, params) -> Upstream:
        def iss_ok(claims, value):
            return self._issuer_ok(provider, value, claims.get("tid"))

        claims = client.parse_id_token(token, nonce=record["nonce"],
                                       claims_options={"iss": {"essential": True, "validate": iss_ok}})
        if claims is None:
            raise self._refuse("no ID token", provider, ctx)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not (1 <= len(sub) <= 255):
            raise self._refuse("ID token without a usable sub", provider, ctx)
        email, verified = claims.get("email"), claims.get("email_verified")
        if email is None and "userinfo_endpoint" in client.load_server_metadata():
            info = client.userinfo(token=token)
            if info.get("sub") != sub:  # OIDC Core §5.3.2: MUST match, else the userinfo is not about this user
                raise self._refuse("userinfo sub differs from the ID token's", provider, ctx)
            email, verified = info.get("email"), info.get("email_verified")
        name = None
        if provider.kind == "apple" and isinstance(params.get("user"), str):  # first sign-in only, not signed
            try:
                n = json.loads(params["user"]).get("name") or {}
                name = " ".join(x for x in (n.get("firstName"), n.get("lastName")) if isinstance(x, str))[:128] or None
            except (ValueError, AttributeError):
                name = None
        amr = claims.get("amr") if isinstance(claims.get("amr"), list) else []
        return Upstream(issuer=claims["iss"], subject=sub, email=_clean_email(email),
                        email_verified=verified is True or verified == "true",  # Apple sends the string "true"
                        amr=tuple(a for a in amr if isinstance(a, str)),
                        acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None, name=name)

    def _github_identity(self, client, token) -> Upstream:
        user = client.get("user", token=token)
        user.raise_for_status()
        data = user.json()
        emails = client.get("user/emails", token=token)
        emails.raise_for_status()
        primary = next((e for e in emails.json() if isinstance(e, dict) and e.get("primary")), None)
        if not isinstance(data.get("id"), int):
            raise ValueError("GitHub user without id")
        return Upstream(issuer="https://github.com", subject=str(data["id"]),
                        email=_clean_email(primary.get("email")) if primary else None,
                        email_verified=bool(primary and primary.get("verified") is True))

    # --- what the identity leads to ---------------------------------------------------------------------------------
    def _identity(self, iss: str, sub: str) -> FederatedIdentity | None:
        return self.db.session.execute(select(FederatedIdentity).where(
            FederatedIdentity.issuer == iss, FederatedIdentity.subject == sub)).scalar_one_or_none()

    def _sign_in(self, provider, up: Upstream, record, ctx, browser) -> Outcome:
        ident = self._identity(up.issuer, up.subject)  # the ONLY lookup: never by e-mail
        if ident is not None:
            user = self.db.session.get(User, ident.user_id)
            ident.last_used_at = self.clock.now()
            ident.email, ident.email_verified = up.email, up.email_verified  # informational
            self.db.session.commit()
            return Outcome("login", self.login_with(user, provider, up, ctx, record.get("next")),
                           next=record.get("next"))
        if not up.email or not up.email_verified:
            # Non-verifying IdP, nOAuth, or an omitted email_verified: no account is created from this address and
            # no account is reached with it.
            self.audit.record("federation:signup:refused", "failure", ip=ctx.ip, user_agent=ctx.user_agent,
                              reason="provider did not confirm the e-mail address",
                              details={"provider": provider.slug})
            raise FederationRefused(
                _("%(provider)s did not confirm an e-mail address for this sign-in, so we cannot create an account "
                  "from it. Create an account with your e-mail address, then link this sign-in method on your "
                  "account page.", provider=provider.name), reason="email_unverified")
        existing = self.db.session.execute(select(User).where(User.email == up.email)).scalar_one_or_none()
        if existing is not None and existing.email_verified_at is not None:
            # Classic-federated merge refused: the owner proves the account first, then confirms the link.
            token = secrets.token_urlsafe(32)
            self._redis().set(f"fed:link:{{{_sha(token)}}}", json.dumps({
                "uid": existing.id, "pid": provider.id, "iss": up.issuer, "sub": up.subject, "email": up.email,
                "verified": up.email_verified, "browser": _sha(browser or ""), "created": self.clock.timestamp()}),
                ex=LINK_TTL)
            self.audit.record("federation:link:pending", "info", subject_id=existing.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, details={"provider": provider.slug})
            return Outcome("link_needed", link_token=token, next=record.get("next"))
        if existing is not None:
            self._discard_unverified(existing, ctx, provider)
        user = User(email=up.email, password_hash=None, email_verified_at=self.clock.now(),
                    sessions_valid_after=self.clock.now())
        self.db.session.add(user)
        try:
            self.db.session.flush()
            self.db.session.add(FederatedIdentity(user_id=user.id, provider_id=provider.id, issuer=up.issuer,
                                                  subject=up.subject, email=up.email, email_verified=True,
                                                  last_used_at=self.clock.now()))
            self.db.session.commit()
        except IntegrityError:  # a concurrent callback for the same identity or address won
            self.db.session.rollback()
            raise FederationRefused(N_("This sign-in is already being completed. Try again.")) from None
        self.audit.record("federation:signup:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent, details={"provider": provider.slug})
        return Outcome("login", self.login_with(user, provider, up, ctx, record.get("next")), next=record.get("next"))

    def _discard_unverified(self, user: User, ctx, provider) -> None:
        """An unverified password registration of an address the provider has just verified: it was never proven,
        so it is not the owner's — it goes, with its sessions, pending changes and anything linked to it."""
        uid = user.id
        ended = self.sessions.revoke_all(user, "discarded_unverified")
        self._redis().delete(f"emailchange:u:{uid}")
        self.db.session.delete(user)
        self.db.session.commit()
        self.audit.record("account:discarded:unverified", "success", subject_id=uid, ip=ctx.ip,
                          user_agent=ctx.user_agent, reason="address verified by an upstream provider",
                          details={"provider": provider.slug, "sessions_ended": ended})

    def login_with(self, user: User | None, provider, up: Upstream, ctx: RequestContext,
                   next_url: str | None) -> L.LoginResult:
        """A federated login through the same stages as a password login (LoginService)."""
        lg = self.login
        if user is None or not user.is_active:
            self.audit.record("account:login:failure", "failure", subject_id=user.id if user else None, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="account_disabled",
                              details={"provider": provider.slug})
            return L.LoginResult(L.INVALID)
        lg.throttle.precheck(user.email, ctx)  # Throttled → 429, before anything else
        decision = lg.risk.score(user, ctx, breached=False)
        if decision.action == "deny":
            lg._event(user, ctx, "denied", decision, method="fed")
            self.audit.record("account:login:denied", "failure", subject_id=user.id, ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="; ".join(r.text for r in decision.reasons)[:255],
                              details={"score": decision.score, "provider": provider.slug})
            return L.LoginResult(L.DENIED, user=user, decision=decision, reasons=list(decision.reasons))
        notes = [dict(tag="federation:login", outcome="info", subject_id=user.id, ip=ctx.ip,
                      user_agent=ctx.user_agent, details={"provider": provider.slug, "upstream_amr": list(up.amr)})]
        upstream_mfa = bool(provider.trust_mfa and MFA_AMR.intersection(up.amr))
        if upstream_mfa:
            return lg.complete(user, ctx, decision, aal=2, methods=("fed", "mfa"), notes=notes,
                               generation=Generation.of(user))
        if self.mfa.required(user, decision, ctx, defer=notes):
            lg._event(user, ctx, "mfa_required", decision, method="fed", commit=False)
            self.audit.record_many(notes + [dict(
                tag="account:login:mfa_required", outcome="info", subject_id=user.id, ip=ctx.ip,
                user_agent=ctx.user_agent, details={"score": decision.score,
                                                    "reasons": [r.code for r in decision.reasons]})])
            return L.LoginResult(L.MFA_REQUIRED, user=user, decision=decision, reasons=list(decision.reasons),
                                 generation=Generation.of(user, user.password_hash))
        return lg.complete(user, ctx, decision, aal=1, methods=("fed",), notes=notes, generation=Generation.of(user))

    # --- linking --------------------------------------------------------------------------------------------------
    def pending_link(self, token: str | None, browser: str | None) -> dict | None:
        if not isinstance(token, str) or not (16 <= len(token) <= 128):
            return None
        raw = self._redis().get(f"fed:link:{{{_sha(token)}}}")
        if raw is None:
            return None
        data = json.loads(raw)
        if not browser or not hmac.compare_digest(data["browser"], _sha(browser)):
            return None
        return data

    def may_link(self, session, user: User | None) -> bool:
        """A verified account, signed in with a fresh proof (and its second factor when it has one)."""
        return (user is not None and session is not None and user.email_verified_at is not None
                and self.mfa.may_change_factors(session, user))

    def confirm_link(self, token: str, browser: str | None, session, user: User, ctx) -> FederatedIdentity:
        data = self.pending_link(token, browser)
        if data is None:
            raise FederationRefused(N_("This link request is invalid or expired. Sign in with the provider again."))
        if data["uid"] != user.id:
            # Another account's pending link (a link token that leaked, or a victim lured to confirm it).
            self.audit.record("federation:link:confirm", "failure", actor_id=user.id, subject_id=data["uid"],
                              ip=ctx.ip, user_agent=ctx.user_agent, reason="not this account's link")
            raise FederationRefused(N_("This link request belongs to another account."), status=403)
        if not self.may_link(session, user) or session.created_at.timestamp() < data["created"]:
            raise FederationRefused(N_("Sign in to this account again to confirm the link."), reason="not_fresh")
        if self._redis().getdel(f"fed:link:{{{_sha(token)}}}") is None:
            raise FederationRefused(N_("This link request was already used."))
        return self._add_identity(user, data["pid"], data["iss"], data["sub"], data["email"], data["verified"], ctx)

    def _link_from_center(self, provider, up: Upstream, record, ctx, user, session) -> Outcome:
        if user is None or user.id != record.get("uid"):
            # The session that started the link is not the one finishing it (another user's callback, a login CSRF).
            self.audit.record("federation:link:confirm", "failure", subject_id=record.get("uid"), ip=ctx.ip,
                              user_agent=ctx.user_agent, reason="callback finished in another account's session")
            raise FederationRefused(N_("This link was started by another account."), status=403)
        if not self.may_link(session, user):
            raise FederationRefused(N_("Sign in again to link a sign-in method."), reason="not_fresh")
        self._add_identity(user, provider.id, up.issuer, up.subject, up.email, up.email_verified, ctx)
        return Outcome("linked", next=record.get("next"))

    def _add_identity(self, user, pid, iss, sub, email, verified, ctx) -> FederatedIdentity:
        if self._identity(iss, sub) is not None:
            raise FederationRefused(N_("This sign-in is already linked to an account."), status=409)
        ident = FederatedIdentity(user_id=user.id, provider_id=pid, issuer=iss, subject=sub, email=email,
                                  email_verified=bool(verified))
        self.db.session.add(ident)
        try:
            self.db.session.commit()
        except IntegrityError:
            self.db.session.rollback()
            raise FederationRefused(N_("This sign-in is already linked to an account."), status=409) from None
        prov = self.db.session.get(UpstreamProvider, pid)
        self.audit.record("federation:link:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent, details={"provider": prov.slug if prov else pid})
        with mail_language(user):
            self.mailer.send(user.email, _("A sign-in method was linked to your %(service)s account",
                                           service=self.settings.service_name),
                             _("%(provider)s can now be used to sign in to your account (%(email)s). If this was not "
                               "you, remove it on your account page: %(link)s",
                               provider=prov.name if prov else _("An identity provider"),
                               email=email or _("no address"), link=self.settings.base_url.rstrip('/') + "/account")
                             + "\n")
        return ident

    def identities(self, user: User) -> list[tuple[FederatedIdentity, UpstreamProvider]]:
        return list(self.db.session.execute(
            select(FederatedIdentity, UpstreamProvider).join(UpstreamProvider,
                                                             UpstreamProvider.id == FederatedIdentity.provider_id)
            .where(FederatedIdentity.user_id == user.id).order_by(FederatedIdentity.created_at)).all())

    def unlink(self, user: User, identity_id: int, ctx) -> bool:
        ident = self.db.session.get(FederatedIdentity, identity_id)
        if ident is None or ident.user_id != user.id:
            return False
        if not self.other_ways_in(user, ident.id):
            raise FederationRefused(N_("This is your only way to sign in. Set a password or add a passkey first."),
                                    status=409, reason="last_method")
        self.db.session.delete(ident)
        self.db.session.commit()
        self.audit.record("federation:unlink:success", "success", actor_id=user.id, subject_id=user.id, ip=ctx.ip,
                          user_agent=ctx.user_agent, details={"identity": identity_id})
        return True

    def other_ways_in(self, user: User, except_identity: int) -> bool:
        from authsvc.models import WebAuthnCredential

        if user.password_hash:
            return True
        others = self.db.session.execute(select(func.count()).select_from(FederatedIdentity).where(
            FederatedIdentity.user_id == user.id, FederatedIdentity.id != except_identity)).scalar()
        passkeys = self.db.session.execute(select(func.count()).select_from(WebAuthnCredential).where(
            WebAuthnCredential.user_id == user.id)).scalar()
        return bool(others or passkeys)

    def _refuse(self, why: str, provider, ctx, public: str | None = None) -> FederationRefused:
        self.audit.record("federation:callback:refused", "failure", ip=ctx.ip, user_agent=ctx.user_agent,
                          reason=why[:255], details={"provider": provider.slug})
        return FederationRefused(public or N_("This sign-in could not be completed. Start again from the sign-in page."),
                                 reason=why[:120])


def _clean_email(value) -> str | None:
    if not isinstance(value, str):
        return None
    email = normalize_email(value)
    return email if valid_email(email) else None


__all__ = ["FederationService", "FederationRefused", "Outcome", "Upstream", "Decision"]
