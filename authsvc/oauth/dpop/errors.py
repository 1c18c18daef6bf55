"""DPoP error responses (RFC 9449 §5, §7.1, §8, §12.2), as Authlib ``OAuth2Error`` subclasses so grants and endpoints
can raise them and Authlib renders them like any other token-endpoint error."""

from __future__ import annotations

from authlib.oauth2.base import OAuth2Error


class InvalidDPoPProofError(OAuth2Error):
    """``invalid_dpop_proof`` (RFC 9449 §12.2): the DPoP proof is missing, malformed, or fails a check."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):
    """``use_dpop_nonce`` (RFC 9449 §8, §9): the server requires a nonce it issued; retry with ``nonce`` = the value of
    the ``DPoP-Nonce`` response header sent with this error."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str, description: str = "Authorization server requires nonce in DPoP proof", **kw):
        super().__init__(description=description, **kw)
        self.nonce = nonce

    def get_headers(self):
        return super().get_headers() + [("DPoP-Nonce", self.nonce)]


def www_authenticate(error: str | None, description: str | None = None, algs=None) -> str:
    """The ``WWW-Authenticate: DPoP …`` challenge a protected resource sends (RFC 9449 §7.1): ``algs`` lists the
    accepted proof algorithms. ``description`` must already be RFC 6750 safe (no '"' or '\\')."""
    parts = []
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if algs:
        parts.append(f'algs="{" ".join(algs)}"')
    return "DPoP " + ", ".join(parts) if parts else "DPoP"
