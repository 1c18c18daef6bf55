"""DPoP — OAuth 2.0 Demonstrating Proof of Possession (RFC 9449) for an Authlib authorization server.

Self-contained (joserfc + Authlib errors; Redis only through ``RedisReplayCache``), so it can be offered upstream:

* ``DPoPProofValidator`` — every proof check of RFC 9449 §4.3 (``proof.py``);
* ``jwk_thumbprint`` — RFC 7638 SHA-256 thumbprint, the ``cnf.jkt`` of a bound token (``jwk.py``);
* ``NonceSource`` — stateless server nonces, ``DPoP-Nonce`` / ``use_dpop_nonce`` (``nonce.py``);
* ``RedisReplayCache`` — single use of ``jti`` (``replay.py``);
* ``InvalidDPoPProofError`` / ``UseDPoPNonceError`` — Authlib ``OAuth2Error``s; ``www_authenticate`` for resources.

How authsvc wires it into its grants, userinfo and introspection: docs/ARCHITECTURE.md ("DPoP").
"""

from .errors import InvalidDPoPProofError, UseDPoPNonceError, www_authenticate
from .jwk import is_public_jwk, jwk_thumbprint
from .nonce import NonceSource
from .proof import ASYMMETRIC_ALGS, DEFAULT_ALGS, DPoPProof, DPoPProofValidator, ath_for, normalise_htu
from .replay import RedisReplayCache

__all__ = ["ASYMMETRIC_ALGS", "DEFAULT_ALGS", "DPoPProof", "DPoPProofValidator", "InvalidDPoPProofError",
           "NonceSource", "RedisReplayCache", "UseDPoPNonceError", "ath_for", "is_public_jwk", "jwk_thumbprint",
           "normalise_htu", "www_authenticate"]
