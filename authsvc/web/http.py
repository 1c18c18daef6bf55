"""Request plumbing shared by every blueprint: client IP, security headers, the login-session cookie."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from flask import Flask, Request, current_app, g, request

from authsvc.accounts.login import RequestContext
from authsvc.defense import canonical_ip

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Sent on every response: by _security_headers for Flask, and as they are by the lean WSGI paths (api/fastpath.py,
# oauth/fastpath.py), so those answer with exactly the headers their Flask routes would.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # same-origin, not no-referrer: Flask-WTF checks the Referer of HTTPS form posts (WTF_CSRF_SSL_STRICT),
    # so the browser must send it to us — and only to us.
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")  # https responses only


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]):
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def parse_hop(hop: str) -> str | None:
    """One X-Forwarded-For hop as an address: ``203.0.113.5``, ``203.0.113.5:4711``, ``2001:db8::7``,
    ``[2001:db8::7]`` or ``[2001:db8::7]:443`` (proxies write all of these). None for anything else."""
    hop = hop.strip()
    if hop.startswith("["):
        host, sep, rest = hop[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
    elif hop.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has at least two colons)
        host, _, port = hop.partition(":")
        if not _is_port(port):
            return None
    else:
        host = hop
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client (one spelling)
        ip = ip.ipv4_mapped
    return str(ip)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


def client_ip(req: Request, trusted: tuple[str, ...]) -> str | None:
    """The peer address, or the right-most untrusted X-Forwarded-For hop when the peer is a trusted proxy.

    Anything a client can write is ignored unless it arrived through a proxy the operator listed (ASVS 15.3.4);
    walking from the right means a client cannot prepend a fake address. Hops with a port or in brackets are parsed
    (``parse_hop``); a hop that is no address at all makes the whole header untrusted (the peer is used).
    """
    peer = canonical_ip(req.remote_addr)  # ::ffff:a.b.c.d from a dual-stack socket is the IPv4 client (issue 19)
    nets = _networks(trusted)
    if not nets or not peer:
        return peer

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in req.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    parsed = []
    for hop in hops:
        addr = parse_hop(hop)
        if addr is None:
            return peer  # garbage in the chain: fall back to what we can see for ourselves
        parsed.append(addr)
    for addr in reversed(parsed):
        if not is_trusted(addr):
            return addr
    return parsed[0] if parsed else peer


PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def metrics_client(req: Request, trusted: tuple[str, ...]) -> str | None:
    """The address that decides access to /metrics. A request that says it was forwarded is judged by the client
    behind the proxy — when that proxy is trusted, the right-most untrusted hop; otherwise the client is unknown
    (None: refused), so a local reverse proxy never lends its loopback address to the internet."""
    peer = req.remote_addr
    if not any(req.headers.get(h) for h in PROXY_HEADERS):
        return peer  # straight from the socket: a scraper on an allowed network
    nets = _networks(trusted)
    try:
        peer_trusted = peer is not None and any(ipaddress.ip_address(peer) in n for n in nets)
    except ValueError:
        peer_trusted = False
    if not peer_trusted or not req.headers.get("X-Forwarded-For"):
        return None
    addr = client_ip(req, trusted)
    return None if addr == peer else addr


def request_context() -> RequestContext:
    if "authsvc_ctx" not in g:
        settings = current_app.config["AUTHSVC"]
        g.authsvc_ctx = RequestContext(
            ip=client_ip(request, settings.trusted_proxies),
            user_agent=(request.headers.get("User-Agent") or "")[:512] or None,
        )
    return g.authsvc_ctx


def _security_headers(resp):
    h = resp.headers
    for name, value in SECURITY_HEADERS:
        h.setdefault(name, value)
    if request.is_secure:
        h.setdefault(*HSTS)
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")  # pages carry personal data and CSRF tokens
    return resp


def set_session_cookie(resp, token: str, max_age: int) -> None:
    settings = current_app.config["AUTHSVC"]
    # __Host- prefix: Secure, Path=/, no Domain — the browser refuses it otherwise, so it cannot be planted by a
    # sibling sub-domain. Chromium accepts Secure cookies on http://localhost, so the local default works too.
    resp.set_cookie(settings.session_cookie_name, token, max_age=max_age, path="/", secure=True, httponly=True,
                    samesite="Lax")


def clear_session_cookie(resp) -> None:
    settings = current_app.config["AUTHSVC"]
    resp.delete_cookie(settings.session_cookie_name, path="/", secure=True, httponly=True, samesite="Lax")


def init_app(app: Flask) -> None:
    app.after_request(_security_headers)
