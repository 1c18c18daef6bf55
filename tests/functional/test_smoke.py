from tests.conftest import PASSWORD, create_user, csrf_token


def test_login_page_renders(client):
    r = client.get("/login")
    assert r.status_code == 200
    assert b"Sign in" in r.data


def test_register_verify_login_and_list_sessions(app, client):
    create_user(app)
    page = client.get("/login")
    r = client.post("/login", data={"email": "alice@example.com", "password": PASSWORD,
                                    "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 302, r.get_data(as_text=True)
    r = client.get("/account")
    assert r.status_code == 200
    assert b"alice@example.com" in r.data
