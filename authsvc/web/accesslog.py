"""Access logs without single-use secrets (issue 12 item 7).

Links mailed to users carry their token in the path (``/reset/<token>``, ``/verify/<token>``, ``/not-me/<token>``,
``/setup/<token>``…) and some requests carry secrets in the query (``/device?user_code=…``). A web server's access
log writes the request line and the Referer as they came, so anyone who can read the logs (operators, log shippers,
a log index) could use a reset link that was not yet redeemed. ``redact_uri`` keeps the shape of a URL and drops the
secrets; ``RedactingLogger`` is a gunicorn logger class that applies it to every atom that carries a URL and blanks
the credential headers. ``authsvc serve`` passes it to gunicorn; run gunicorn directly with
``--logger-class authsvc.web.accesslog.RedactingLogger`` (docs/OPERATIONS.md).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

REDACTED = "[redacted]"
# the segment after one of these is a single-use secret (mailed links, recovery / sign-in links of any feature)
TOKEN_PREFIXES = ("verify", "reset", "not-me", "setup", "recover", "recovery", "sign-in", "login-link", "magic",
                  "confirm", "email-login", "unlock", "approve")
# query parameters whose value is safe and useful in a log; every other value is replaced
SAFE_QUERY = frozenset({"client_id", "response_type", "scope", "code_challenge_method", "prompt", "max_age",
                        "page", "kind", "outcome", "display", "ui_locales", "grant_type", "token_type_hint"})
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~=%]{20,}$")  # a long random-looking segment elsewhere in a path
_URL_ATOMS = ("r", "U", "q", "f")
_URL_HEADERS = ("{referer}i", "{location}o", "{raw_uri}e", "{path_info}e", "{query_string}e", "{http_referer}e",
                "{request_uri}e", "{script_name}e")
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{set-cookie}o", "{http_authorization}e", "{http_cookie}e",
                   "{proxy-authorization}i")


def _redact_path(path: str) -> str:
    parts = path.split("/")
    out = []
    for i, seg in enumerate(parts):
        if i and parts[i - 1].lower() in TOKEN_PREFIXES and seg:
            out.append(REDACTED)
        elif _TOKENISH.match(seg) and not seg.endswith((".css", ".js", ".svg", ".png", ".ico", ".json")):
            out.append(REDACTED)
        else:
            out.append(seg)
    return "/".join(out)


def redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return REDACTED
    return urlencode([(k, v if k in SAFE_QUERY else REDACTED) for k, v in pairs], safe="[]")


def redact_uri(uri: str) -> str:
    """``/reset/AbC…?next=/x`` → ``/reset/[redacted]?next=[redacted]``; absolute URLs (a Referer) keep their origin."""
    if not uri or uri == "-":
        return uri
    origin = ""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://[^/?#]*)(.*)$", uri)
    if m:
        origin, uri = m.group(1), m.group(2)
    uri = uri.split("#", 1)[0]
    path, sep, query = uri.partition("?")
    return origin + _redact_path(path) + (sep + redact_query(query) if sep else "")


def redact_request_line(line: str) -> str:
    """``GET /reset/<token> HTTP/1.1`` → ``GET /reset/[redacted] HTTP/1.1``."""
    parts = line.split(" ")
    if len(parts) == 3:
        return " ".join((parts[0], redact_uri(parts[1]), parts[2]))
    return " ".join(parts[:1] + [redact_uri(" ".join(parts[1:]))])


def redact_atoms(atoms: dict) -> dict:
    for key in _URL_ATOMS + _URL_HEADERS:
        value = atoms.get(key)
        if isinstance(value, str) and value:
            if key == "r":
                atoms[key] = redact_request_line(value)
            elif key in ("q", "{query_string}e"):
                atoms[key] = redact_query(value)
            else:
                atoms[key] = redact_uri(value)
    for key in _SECRET_HEADERS:
        if atoms.get(key):
            atoms[key] = REDACTED
    return atoms


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is a dependency; this only keeps the module importable without it
    _GunicornLogger = object


class RedactingLogger(_GunicornLogger):
    """gunicorn's logger, with single-use tokens and credentials removed from every access-log atom."""

    def atoms(self, resp, req, environ, request_time):
        return redact_atoms(super().atoms(resp, req, environ, request_time))
