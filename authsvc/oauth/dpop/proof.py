"""Checking a DPoP proof JWT (RFC 9449 §4.3).

``DPoPProofValidator.validate`` runs every check of §4.3, in an order chosen so that the cheap, attacker-controlled
parts are refused before any cryptography and the replay cache is only written for a proof that passed everything
else (a proof refused for another reason does not burn its ``jti``):

1. exactly one ``DPoP`` header (a comma means the header was sent twice and joined), a compact JWS of bounded size;
2. header: ``typ`` = ``dpop+jwt``; ``alg`` asymmetric and in the allow-list (never ``none``, never HMAC);
   ``jwk`` an RSA/EC/OKP *public* key (no private members), RSA ≥ 2048 bits;
3. the signature verifies with that ``jwk`` (and only with the header's ``alg``);
4. claims: ``jti`` (string, ≤ 256 chars), ``htm`` = the request method, ``htu`` = the request URI without query and
   fragment, compared after RFC 3986 §6 normalisation, ``iat`` within [now − max_age, now + leeway] — or, when the
   proof carries a valid server nonce, the nonce's slot stands in for ``iat`` (§4.3 check 11, §11.1), so a client
   with a skewed clock is told ``use_dpop_nonce`` instead of being refused for good;
5. ``ath`` = base64url(SHA-256(access token)) when an access token comes with the proof (resource requests), and
   no ``ath`` check otherwise;
6. ``nonce``: if the server requires one, a missing or stale value → ``use_dpop_nonce`` (with a fresh nonce);
7. the ``jti`` was not seen before for this key within the acceptance window (``replay`` cache, SET NX).

The validator has no Flask or authsvc dependency: it takes the header value, method and URI, and returns a
``DPoPProof`` (the key's RFC 7638 thumbprint is ``proof.jkt``, what ``cnf.jkt`` binds a token to).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from .errors import InvalidDPoPProofError, UseDPoPNonceError
from .jwk import b64url, is_public_jwk, jwk_thumbprint

# Asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037). HS*, "none" and anything unknown are never accepted.
ASYMMETRIC_ALGS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA",
                   "Ed25519")
DEFAULT_ALGS = ("ES256", "PS256", "RS256", "EdDSA", "Ed25519")
_ALG_KTY = {"ES": "EC", "PS": "RSA", "RS": "RSA", "Ed": "OKP"}
_EC_CRV = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MAX_PROOF = 8192  # an RSA-4096 jwk with a long htu stays well below this
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def ath_for(access_token: str) -> str:
    """The ``ath`` claim for an access token: base64url(SHA-256(ASCII of the token)), RFC 9449 §4.2."""
    return b64url(hashlib.sha256(access_token.encode("ascii", "strict")).digest())


def _normalise_path(path: str) -> str:
    # RFC 3986 §6.2.2.2: percent-encoding normalisation (upper-case hex, decode unreserved); §6.2.2.3 dot segments.
    def fix(m):
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    path = re.sub(r"%([0-9A-Fa-f]{2})", fix, path)
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(out) > 1:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if path.endswith(("/.", "/..")):
        out.append("")
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


@lru_cache(maxsize=512)  # pure; the server's own URIs and a client's htu repeat on every request
def normalise_htu(uri: str) -> str | None:
    """``uri`` without query and fragment, normalised per RFC 3986 §6.2.2 (syntax) and §6.2.3 (scheme: http/https,
    default port dropped, empty path = "/"). None for anything that is not an absolute http(s) URI with a host, or
    that carries userinfo."""
    if not isinstance(uri, str) or not uri or len(uri) > 4096 or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in uri):
        return None
    try:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{_normalise_path(parts.path or '/')}"


@dataclass(frozen=True)
class DPoPProof:
    """A proof that passed every check. ``jkt`` is the RFC 7638 thumbprint of ``jwk``."""

    jkt: str
    jwk: dict
    alg: str
    claims: dict
    header: dict


@lru_cache(maxsize=1024)
def _import_public(material: tuple):
    """The joserfc key for a public JWK's members, or None. Cached: a client signs every proof with the same key,
    and importing (point / modulus validation) costs about as much as verifying the signature. Keys are immutable
    public values, so caching them leaks nothing."""
    try:
        return JWKRegistry.import_key(dict(material))
    except (JoseError, ValueError, TypeError):
        return None


class _ProofRegistry(jws.JWSRegistry):
    # The key rides in the header (an RSA-4096 JWK is ~750 bytes): joserfc's 512-byte default is too small.
    max_header_length = 4096
    max_payload_length = 4096
    max_signature_length = 1024


def _b64json(segment: str):
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return json.loads(raw.decode("utf-8"))


class DPoPProofValidator:
    """Validates DPoP proofs.

    ``algorithms``: the accepted ``alg`` values (a subset of ``ASYMMETRIC_ALGS``; also what the server advertises as
    ``dpop_signing_alg_values_supported``). ``replay``: an object with ``first_use(jkt, jti, ttl) -> bool`` (e.g.
    ``RedisReplayCache``), or None to skip the check (tests of other checks only — never in production).
    ``nonces``: a ``NonceSource`` or None. ``max_age`` / ``leeway``: how old / how far in the future ``iat`` may be.
    """

    def __init__(self, *, algorithms=DEFAULT_ALGS, replay=None, nonces=None, max_age: int = 120, leeway: int = 10,
                 clock=time.time):
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGS]
        if bad or not algorithms:
            raise ValueError(f"not asymmetric JWS algorithms: {bad}")
        self.algorithms = tuple(algorithms)
        self.replay = replay
        self.nonces = nonces
        self.max_age = max_age
        self.leeway = leeway
        self.clock = clock

    # ------------------------------------------------------------------------------------------------------------------
    @property
    def replay_ttl(self) -> int:
        """How long a ``jti`` must be remembered: the whole time a proof is accepted, by its ``iat`` or its nonce."""
        nonce_life = 2 * self.nonces.period if self.nonces is not None else 0
        return max(self.max_age + self.leeway, nonce_life) + 1

    def validate(self, value, *, method: str, uri: str, access_token: str | None = None,
                 require_nonce: bool = False, check_replay: bool = True) -> DPoPProof:
        """Check the ``DPoP`` header ``value`` (a str, or a list if the framework gives all values) for a request
        ``method`` ``uri``. ``access_token``: the token presented with the proof at a resource (enables the ``ath``
        check, RFC 9449 §4.3 check 12 / §7). Raises ``InvalidDPoPProofError`` or ``UseDPoPNonceError``.
        ``check_replay=False`` leaves the ``jti`` check to the caller (who must then call ``replay.first_use(proof.jkt,
        proof.claims["jti"], replay_ttl)`` before acting on the proof, e.g. after cheaper checks of its own)."""
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise InvalidDPoPProofError("Exactly one DPoP header is required")
            value = value[0]
        if not isinstance(value, str) or not value:
            raise InvalidDPoPProofError("DPoP proof missing")
        value = value.strip()
        if "," in value or len(value) > MAX_PROOF or not _COMPACT.fullmatch(value):
            raise InvalidDPoPProofError("DPoP proof must be a single compact JWS")
        header = self._decode_header(value)
        alg, jwk = self._check_header(header)
        key = self._import(jwk, alg)
        try:
            verified = jws.deserialize_compact(value, key, algorithms=[alg],
                                               registry=_ProofRegistry(algorithms=[alg], strict_check_header=False))
        except (JoseError, ValueError, TypeError):
            raise InvalidDPoPProofError("DPoP proof signature does not verify") from None
        try:
            claims = json.loads(verified.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidDPoPProofError("DPoP proof is not a JWT") from None
        if not isinstance(claims, dict):
            raise InvalidDPoPProofError("DPoP proof is not a JWT")
        try:
            jkt = jwk_thumbprint(jwk)
        except ValueError:
            raise InvalidDPoPProofError("DPoP proof jwk is invalid") from None
        if require_nonce and self.nonces is None:
            raise ValueError("require_nonce needs a NonceSource")
        nonce_ok = self.nonces is not None and "nonce" in claims and self.nonces.is_valid(claims["nonce"])
        self._check_claims(claims, method=method, uri=uri, access_token=access_token, nonce_ok=nonce_ok)
        if self.nonces is not None and (require_nonce or "nonce" in claims) and not nonce_ok:
            raise UseDPoPNonceError(self.nonces.current())
        if check_replay and self.replay is not None and not self.replay.first_use(jkt, claims["jti"], self.replay_ttl):
            raise InvalidDPoPProofError("DPoP proof was already used (jti replay)")
        return DPoPProof(jkt=jkt, jwk=dict(jwk), alg=alg, claims=claims, header=header)

    # ------------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _decode_header(value: str) -> dict:
        try:
            header = _b64json(value.split(".", 1)[0])
        except (ValueError, UnicodeDecodeError):
            raise InvalidDPoPProofError("DPoP proof is not a JWT") from None
        if not isinstance(header, dict):
            raise InvalidDPoPProofError("DPoP proof is not a JWT")
        return header

    def _check_header(self, header: dict) -> tuple[str, dict]:
        if header.get("typ") != "dpop+jwt":
            raise InvalidDPoPProofError("DPoP proof typ must be dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidDPoPProofError("DPoP proof alg is not an accepted asymmetric algorithm")
        if "crit" in header:
            raise InvalidDPoPProofError("DPoP proof has unsupported critical header parameters")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDPoPProofError("DPoP proof header must carry the public key as jwk")
        if not is_public_jwk(jwk):
            raise InvalidDPoPProofError("DPoP proof jwk must be an asymmetric public key (no private members)")
        if jwk["kty"] != _ALG_KTY[alg[:2]]:
            raise InvalidDPoPProofError("DPoP proof jwk does not match alg")
        if alg in _EC_CRV and jwk.get("crv") != _EC_CRV[alg]:
            raise InvalidDPoPProofError("DPoP proof jwk curve does not match alg")
        if (alg == "EdDSA" and jwk.get("crv") not in ("Ed25519", "Ed448")) or (alg == "Ed25519"
                                                                              and jwk.get("crv") != "Ed25519"):
            raise InvalidDPoPProofError("DPoP proof jwk curve does not match alg")
        return alg, jwk

    @staticmethod
    def _import(jwk: dict, alg: str):
        # Only the key material: "use", "key_ops", "alg" members of a client-supplied jwk must not steer the library.
        material = tuple((k, jwk[k]) for k in ("kty", "crv", "x", "y", "n", "e") if k in jwk)
        if not all(isinstance(v, str) for _, v in material):
            raise InvalidDPoPProofError("DPoP proof jwk is invalid")
        key = _import_public(material)
        if key is None:
            raise InvalidDPoPProofError("DPoP proof jwk is invalid")
        if jwk["kty"] == "RSA":
            size = key.raw_value.key_size if hasattr(key.raw_value, "key_size") else 0
            if size < 2048:
                raise InvalidDPoPProofError("DPoP proof RSA key is shorter than 2048 bits")
        return key

    def _check_claims(self, claims: dict, *, method: str, uri: str, access_token: str | None,
                      nonce_ok: bool = False) -> None:
        jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise InvalidDPoPProofError("DPoP proof jti missing or invalid")
        if not isinstance(htm, str) or htm != method:
            raise InvalidDPoPProofError("DPoP proof htm does not match the request method")
        expected = normalise_htu(uri)
        if expected is None:
            raise ValueError(f"the server's own request URI is not an absolute http(s) URI: {uri!r}")
        if not isinstance(htu, str) or normalise_htu(htu) != expected:
            raise InvalidDPoPProofError("DPoP proof htu does not match the request URI")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise InvalidDPoPProofError("DPoP proof iat missing or invalid")
        now = self.clock()
        if not nonce_ok and not now - self.max_age <= iat <= now + self.leeway:
            if self.nonces is not None:  # the server's own time, through a nonce, can replace the client's clock
                raise UseDPoPNonceError(self.nonces.current(), "DPoP proof iat is not recent enough; use a DPoP nonce")
            raise InvalidDPoPProofError("DPoP proof iat is too old" if iat < now else "DPoP proof iat is in the future")
        if access_token is not None:
            ath = claims.get("ath")
            try:
                want = ath_for(access_token)
            except UnicodeEncodeError:
                raise InvalidDPoPProofError("DPoP proof ath does not match the access token") from None
            if not isinstance(ath, str) or not ath.isascii() or not hmac.compare_digest(ath, want):
                raise InvalidDPoPProofError("DPoP proof ath does not match the access token")


__all__ = ["ASYMMETRIC_ALGS", "DEFAULT_ALGS", "DPoPProof", "DPoPProofValidator", "ath_for", "normalise_htu"]
