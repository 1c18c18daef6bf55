"""Dependencies down → 503, never "logged in", and recovery without a restart."""

import pytest

from tests.conftest import PASSWORD, create_user, csrf_token
from tests.functional.helpers import login


def test_redis_down_gives_503_then_recovers_and_keeps_sessions(make_app, private_redis):
    app = make_app(redis_url=private_redis.url)
    create_user(app)
    browser = app.test_client()
    assert login(browser).status_code == 302
    api = app.test_client()
    token = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}).json["session_token"]
    login_page = app.test_client()
    token_form = csrf_token(login_page.get("/login").get_data(as_text=True))

    private_redis.stop()
    r = browser.get("/account")
    assert r.status_code == 503 and b"temporarily unavailable" in r.data  # not a redirect, not the page
    assert r.headers["Retry-After"]
    r = login_page.post("/login", data={"email": "alice@example.com", "password": PASSWORD, "csrf_token": token_form})
    assert r.status_code == 503
    assert not any(h.startswith("__Host-authsvc=") for h in r.headers.getlist("Set-Cookie"))
    r = api.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503 and r.json["error"] == "unavailable"
    r = api.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 503
    assert app.test_client().get("/readyz").status_code == 503
    assert app.test_client().get("/healthz").status_code == 200  # the process itself is fine

    private_redis.start()  # same folder: the AOF brings the sessions back
    assert browser.get("/account").status_code == 200
    assert api.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert app.test_client().get("/readyz").json["checks"] == {"database": "ok", "redis": "ok"}


@pytest.fixture(params=["sqlite", "postgresql"])
def dead_database_url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "no" / "such" / "dir" / "x.db")
    pytest.importorskip("psycopg")
    return "postgresql+psycopg://nobody@127.0.0.1:1/none"  # nothing listens on port 1


def test_database_down_gives_503(app, make_app, dead_database_url):
    create_user(app)
    down = make_app(database_url=dead_database_url)
    c = down.test_client()
    r = c.post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 503 and r.json["error"] == "unavailable"
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["database"] == "unavailable"
    r = c.get("/login")  # a page that needs no store still renders
    assert r.status_code == 200


def test_session_check_with_database_down_is_503_not_anonymous(app, make_app, tmp_path):
    """A valid cookie must never be treated as "not logged in" (redirect) nor "logged in" when SQL is away."""
    create_user(app)
    c = app.test_client()
    login(c)
    cookie = c.get_cookie("__Host-authsvc")
    down = make_app(database_url="sqlite:///" + str(tmp_path / "missing" / "db.sqlite"))
    d = down.test_client()
    d.set_cookie("__Host-authsvc", cookie.value, secure=True)
    r = d.get("/account")
    assert r.status_code == 503
