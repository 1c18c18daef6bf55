"""WebAuthn ceremonies on py_webauthn. The library does the protocol; we keep challenges and credentials.

* Challenges: 32 random bytes (256 bits), stored in Redis under the session id or the pending-login hash they were
  issued to, consumed with GETDEL — single-use, short-lived and useless to any other browser.
* Origin and RP ID come from settings and are pinned in every verify call.
* Sign counters: the signature is verified first (so a forged request cannot flag a key), then a counter that did
  not move forward is refused, audited as ``mfa:webauthn:signcount`` and the credential is flagged (possible clone).
  A flagged credential is refused from then on (``CredentialSuspended``) until the owner re-enrols it or an
  administrator clears the flag.
"""

from __future__ import annotations

import json
import secrets

from sqlalchemy import select
from webauthn import (base64url_to_bytes, generate_authentication_options, generate_registration_options,
                      options_to_json, verify_authentication_response, verify_registration_response)
from webauthn.helpers import bytes_to_base64url, parse_authenticator_data
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (AuthenticatorSelectionCriteria, PublicKeyCredentialDescriptor,
                                      ResidentKeyRequirement, UserVerificationRequirement)

from authsvc.models import User, WebAuthnCredential

CHALLENGE_BYTES = 32


def clean_name(name: str | None) -> str:
    """A passkey's display name as people will read it in lists and e-mails: no control or format characters
    (a right-to-left override would make "yek ytiruces" look like another key), whitespace folded, 64 at most."""
    import unicodedata

    text = "".join(" " if ch.isspace() else ch for ch in (name or "")
                   if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    return " ".join(text.split())[:64].strip() or "Security key"


class WebAuthnError(Exception):
    """The ceremony failed; ``reason`` is safe to log (never key material)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SignCountRegression(WebAuthnError):
    def __init__(self, credential: WebAuthnCredential, stored: int, received: int):
        super().__init__(f"sign count went from {stored} to {received}")
        self.credential, self.stored, self.received = credential, stored, received


class CredentialSuspended(WebAuthnError):
    """A credential once caught with a sign count that did not move forward (possible clone): refused for good,
    until the owner removes and re-adds it or an administrator clears the flag (``authsvc mfa unflag``)."""

    def __init__(self, credential: WebAuthnCredential):
        super().__init__("credential suspended: its sign count once went backwards (possible clone)")
        self.credential = credential


class WebAuthnService:
    def __init__(self, *, db, store, clock, rp_id: str, rp_name: str, origins: tuple[str, ...]):
        self.db, self.store, self.clock = db, store, clock
        self.rp_id, self.rp_name, self.origins = rp_id, rp_name, list(origins)

    def credentials(self, user: User) -> list[WebAuthnCredential]:
        return list(self.db.session.execute(select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id)
                                            .order_by(WebAuthnCredential.created_at)).scalars())

    def user_handle_of(self, user: User) -> str | None:
        """The handle stored on the user's authenticators (None before the first passkey)."""
        return self.db.session.execute(select(WebAuthnCredential.user_handle)
                                       .where(WebAuthnCredential.user_id == user.id).limit(1)).scalar()

    def _user_handle(self, user: User) -> str:
        existing = self.db.session.execute(select(WebAuthnCredential.user_handle)
                                           .where(WebAuthnCredential.user_id == user.id).limit(1)).scalar()
        # Random, not the database id: the handle is stored on the authenticator and must not identify the user.
        return existing or bytes_to_base64url(secrets.token_bytes(32))

    # --- registration ---------------------------------------------------------------------------------------------
    def registration_options(self, user: User, binding: str) -> str:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        handle = self._user_handle(user)
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=self.rp_name, user_name=user.email, user_id=base64url_to_bytes(handle),
            challenge=challenge, timeout=120000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,  # discoverable where possible → passkey login
                user_verification=UserVerificationRequirement.PREFERRED),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id))
                                 for c in self.credentials(user)])
        self.store.put_challenge("reg", binding, {"c": bytes_to_base64url(challenge), "u": user.id, "h": handle})
        return options_to_json(options)

    def register(self, user: User, binding: str, credential: dict, name: str, *, aal: int = 1) -> WebAuthnCredential:
        issued = self.store.take_challenge("reg", binding)
        if issued is None or issued["u"] != user.id:
            raise WebAuthnError("no registration challenge for this session (expired or already used)")
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=base64url_to_bytes(issued["c"]),
                expected_rp_id=self.rp_id, expected_origin=self.origins, require_user_verification=False)
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            raise WebAuthnError(f"registration not verified: {exc}") from None
        cred_id = bytes_to_base64url(verified.credential_id)
        if self.db.session.execute(select(WebAuthnCredential.id)
                                   .where(WebAuthnCredential.credential_id == cred_id)).first():
            raise WebAuthnError("this authenticator is already registered")
        transports = (credential.get("response") or {}).get("transports") or []
        row = WebAuthnCredential(
            user_id=user.id, credential_id=cred_id, user_handle=issued["h"],
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            name=clean_name(name),
            transports=",".join(str(t) for t in transports if isinstance(t, str))[:128] or None,
            aaguid=str(verified.aaguid)[:36] if verified.aaguid else None, created_at=self.clock.now(),
            enrolled_aal=aal)
        self.db.session.add(row)
        self.db.session.commit()
        return row

    def rename(self, user: User, cred_id: int, name: str) -> tuple[str, WebAuthnCredential] | None:
        """(old name, row) after renaming one of *this user's* credentials; None for anyone else's id."""
        row = self.db.session.execute(select(WebAuthnCredential).where(
            WebAuthnCredential.id == cred_id, WebAuthnCredential.user_id == user.id)).scalar_one_or_none()
        if row is None:
            return None
        old, row.name = row.name, clean_name(name)
        self.db.session.commit()
        return old, row

    # --- authentication -------------------------------------------------------------------------------------------
    def authentication_options(self, binding: str, user: User | None, *, require_uv: bool) -> str:
        """``user`` given: a second factor or step-up for that user. None: passkey login (discoverable)."""
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        allow = [] if user is None else [
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id)) for c in self.credentials(user)]
        options = generate_authentication_options(
            rp_id=self.rp_id, challenge=challenge, timeout=120000, allow_credentials=allow,
            user_verification=UserVerificationRequirement.REQUIRED if require_uv
            else UserVerificationRequirement.PREFERRED)
        self.store.put_challenge("auth", binding, {"c": bytes_to_base64url(challenge),
                                                   "u": user.id if user else None, "uv": require_uv})
        return options_to_json(options)

    def authenticate(self, binding: str, credential: dict, *, user: User | None) -> tuple[WebAuthnCredential, bool]:
        """Verify an assertion against the challenge issued to ``binding``. Returns (credential, user_verified)."""
        issued = self.store.take_challenge("auth", binding)  # consumed whatever happens next: one try per challenge
        if issued is None:
            raise WebAuthnError("no challenge for this sign-in (expired or already used)")
        if issued["u"] != (user.id if user else None):
            raise WebAuthnError("challenge was issued for another sign-in")
        if not isinstance(credential, dict) or not isinstance(credential.get("id"), str):
            raise WebAuthnError("malformed credential")
        row = self.db.session.execute(select(WebAuthnCredential)
                                      .where(WebAuthnCredential.credential_id == credential["id"])).scalar()
        if row is None or (user is not None and row.user_id != user.id):
            raise WebAuthnError("unknown credential")
        handle = (credential.get("response") or {}).get("userHandle")
        if user is None and handle != row.user_handle:
            # Passkey login: the authenticator must name the account the credential belongs to.
            raise WebAuthnError("user handle does not match the credential")
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=base64url_to_bytes(issued["c"]),
                expected_rp_id=self.rp_id, expected_origin=self.origins, credential_public_key=row.public_key,
                credential_current_sign_count=0,  # counter checked below, after the signature, so it can be audited
                require_user_verification=bool(issued["uv"]))
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
            raise WebAuthnError(f"assertion not verified: {exc}") from None
        if row.flagged_at is not None:  # after the signature check, so that only the key's holder is told no
            raise CredentialSuspended(row)
        if (verified.new_sign_count > 0 or row.sign_count > 0) and verified.new_sign_count <= row.sign_count:
            row.flagged_at = self.clock.now()
            self.db.session.commit()
            raise SignCountRegression(row, row.sign_count, verified.new_sign_count)
        row.sign_count = verified.new_sign_count
        row.last_used_at = self.clock.now()
        self.db.session.commit()
        return row, verified.user_verified

    def remove(self, user: User, cred_id: int) -> WebAuthnCredential | None:
        row = self.db.session.get(WebAuthnCredential, cred_id)
        if row is None or row.user_id != user.id:
            return None
        self.db.session.delete(row)
        self.db.session.commit()
        return row


def authenticator_sign_count(credential: dict) -> int:
    """The counter an assertion carries (for diagnostics and tests)."""
    data = base64url_to_bytes(credential["response"]["authenticatorData"])
    return parse_authenticator_data(data).sign_count


def loads(body: bytes | str) -> dict:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    return data
