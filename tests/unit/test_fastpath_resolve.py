"""The lean session check's memoised client address (authsvc.api.fastpath._resolve_cached) answers exactly what
the uncached trusted-proxy rule answers, for hostile headers too, and never keeps long headers."""

import pytest

from authsvc.api import fastpath

TRUSTED = ("127.0.0.1/32",)


@pytest.mark.parametrize("peer,xff", [
    ("127.0.0.1", "198.51.100.7"),
    ("127.0.0.1", "203.0.113.1, 198.51.100.7"),  # a client prepending a fake hop: the right-most untrusted wins
    ("127.0.0.1", "not-an-ip, 198.51.100.7"),  # garbage in the chain: the peer
    ("203.0.113.9", "198.51.100.7"),  # not through a trusted proxy: the header is ignored
    ("127.0.0.1", "[2001:db8::7]:443"),
    ("::ffff:127.0.0.1", "198.51.100.7"),
    ("127.0.0.1", "１９８.51.100.7"),  # full-width digits are no address
    ("127.0.0.1", ""),
    (None, "198.51.100.7"),
])
def test_memoised_address_equals_the_trusted_proxy_rule(peer, xff):
    fastpath._resolve_cached.cache_clear()
    assert fastpath._resolve_cached(peer, xff, TRUSTED) == fastpath._resolve(peer, xff, TRUSTED)
    assert fastpath._resolve_cached(peer, xff, TRUSTED) == fastpath._resolve(peer, xff, TRUSTED)  # the hit too
    assert fastpath._resolve_cached(peer, xff, ()) == fastpath._resolve(peer, xff, ())


def test_long_headers_are_resolved_but_never_kept():
    class App:
        config = {"AUTHSVC": type("S", (), {"session_drift_bearer": True, "trusted_proxies": TRUSTED})()}

    fast = fastpath.SessionCheckFastPath(App(), None)
    fastpath._resolve_cached.cache_clear()
    long_chain = ", ".join(["198.51.100.7"] * 40)  # > _XFF_CACHED characters
    assert len(long_chain) > fastpath._XFF_CACHED
    ip, ua = fast._use({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": long_chain, "HTTP_USER_AGENT": "x"})
    assert ip == "198.51.100.7" and ua == "x"
    assert fastpath._resolve_cached.cache_info().currsize == 0
    fast._use({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"})
    assert fastpath._resolve_cached.cache_info().currsize == 1
    assert fastpath._resolve_cached.cache_info().maxsize == 8192  # bounded
