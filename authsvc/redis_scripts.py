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
