"""One JSON reader for every request body (the API, the WebAuthn ceremonies): hostile JSON is a clear 400, never a 500.

``json.loads`` alone lets three things through to code that cannot take them: 20,000 nested brackets (RecursionError
inside the parser, or later in whatever walks the value), lone UTF-16 surrogates (``"\\ud800"`` decodes to a ``str``
that no UTF-8 encoder — argon2, HMAC keys, the database driver — accepts), and NUL characters (PostgreSQL refuses them
in text). Each is refused here, before anything is hashed, throttled or stored.
"""

from __future__ import annotations

import json

MAX_DEPTH = 32  # our bodies are two levels deep; WebAuthn credentials four


class BadJson(ValueError):
    """The body is not JSON we accept; ``str(exc)`` says why, in words a client developer can act on."""


def load_json(raw: bytes | str):
    """The parsed body, or ``BadJson``."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadJson(f"it is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise BadJson("it does not parse") from None
    check(data)
    return data


def check(data) -> None:
    """Depth, and every string (keys too): valid Unicode, no NUL. Iterative, so depth itself cannot hurt it."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadJson(f"it is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadJson("a string contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson("a string contains a lone surrogate (\\ud800-\\udfff): not valid Unicode") from None
