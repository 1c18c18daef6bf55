"""Issue 12 item 7: client addresses behind proxies. X-Forwarded-For hops written with a port or in brackets are
parsed (not dropped in favour of the proxy's address), and /metrics behind a local reverse proxy is decided by the
proxied client, not by the proxy's loopback socket."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from authsvc.web.http import client_ip
from tests.conftest import create_user

TOKEN = "m" * 40


@pytest.mark.parametrize("xff, expected", [
    ("203.0.113.5:4711", "203.0.113.5"),
    ("[2001:db8::7]", "2001:db8::7"),
    ("[2001:db8::7]:443", "2001:db8::7"),
    ("2001:db8::7", "2001:db8::7"),
    ("[::ffff:203.0.113.5]:80", "203.0.113.5"),
    ("2001:DB8:0::7", "2001:db8::7"),
    ("6.6.6.6, 203.0.113.5:80, 10.9.9.9:3128", "203.0.113.5"),  # spoofed left hop still ignored
    ("[2001:db8::7]:443, [10.0.0.9]", "2001:db8::7"),
    ("203.0.113.5:99999", "10.1.2.3"),  # not a port: garbage → the peer
    ("[203.0.113.5", "10.1.2.3"),
    ("garbage", "10.1.2.3"),
    ("", "10.1.2.3"),
])
def test_forwarded_hops_with_ports_and_brackets_are_parsed(xff, expected):
    req = Request(EnvironBuilder(headers={"X-Forwarded-For": xff}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
                  .get_environ())
    assert client_ip(req, ("10.0.0.0/8",)) == expected


def test_the_audit_row_gets_the_client_behind_a_port_hop(make_app):
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    app = make_app(trusted_proxies=("10.0.0.0/8",))
    create_user(app)
    app.test_client().post("/api/v1/login", json={"email": "alice@example.com", "password": "wrong wrong wrong"},
                           headers={"X-Forwarded-For": "[2001:db8::7]:51000"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    with app.app_context():
        ip = db.session.execute(select(SecurityEvent.ip).order_by(SecurityEvent.id.desc())).scalars().first()
    assert ip == "2001:db8::7"


def test_metrics_behind_a_local_trusted_proxy_go_by_the_proxied_client(make_app):
    app = make_app(trusted_proxies=("127.0.0.1/32",), metrics_token=TOKEN)
    client = app.test_client()
    local = {"environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    # the internet, through the local reverse proxy: refused
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"}, **local).status_code == 404
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7:5555"}, **local).status_code == 404
    # a spoofed loopback hop to the left of the real client changes nothing
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}, **local).status_code == 404
    # a scraper on the box itself (no proxy in between), or the token from anywhere: allowed
    assert client.get("/metrics", **local).status_code == 200
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7", "Authorization": f"Bearer {TOKEN}"},
                      **local).status_code == 200


def test_metrics_through_an_unlisted_local_proxy_are_refused(make_app):
    """A local reverse proxy the operator did not list as trusted still says it forwarded (X-Forwarded-For /
    Forwarded / X-Real-IP): the real client is unknown, so the loopback socket must not open /metrics."""
    app = make_app()
    client = app.test_client()
    local = {"environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    for header in ("X-Forwarded-For", "X-Real-IP"):
        assert client.get("/metrics", headers={header: "203.0.113.7"}, **local).status_code == 404, header
    assert client.get("/metrics", headers={"Forwarded": "for=203.0.113.7"}, **local).status_code == 404
    assert client.get("/metrics", **local).status_code == 200
