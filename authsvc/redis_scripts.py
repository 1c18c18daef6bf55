"""Lua scripts registered once per Redis client.

Every service that runs scripts needs the same thing: ``register_script`` on first use, and again if the client was
replaced (tests swap Redis servers; a worker's pool is created after fork). One helper instead of one copy per
service.
"""

from __future__ import annotations


class ScriptCache:
    def __init__(self, redis_getter):
        self._redis = redis_getter
        self._scripts: dict[str, object] = {}

    def get(self, name: str, body: str):
        r = self._redis()
        script = self._scripts.get(name)
        if script is None or script.registered_client is not r:
            script = self._scripts[name] = r.register_script(body)
        return script


def queue(pipe, script, keys, args) -> None:
    """Add ``script`` to a pipeline as a bare EVALSHA.

    ``Script.__call__(client=pipe)`` makes redis-py send SCRIPT EXISTS in a round trip of its own before every
    pipeline that carries a script (measured: one extra round trip per login). A bare EVALSHA costs nothing extra;
    the rare NOSCRIPT reply (a restarted or new server) is settled afterwards by ``settle``.
    """
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def settle(reply, script, keys, args):
    """The reply of a ``queue``d script, running it now (loading it first) if the server did not know it.
    Run the pipeline with ``raise_on_error=False`` so the other commands' replies survive a NOSCRIPT."""
    from redis.exceptions import NoScriptError, ResponseError

    if isinstance(reply, NoScriptError):
        return script(keys=keys, args=args)
    if isinstance(reply, ResponseError):
        raise reply
    return reply
