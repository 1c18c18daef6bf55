import re

from tests.conftest import PASSWORD, csrf_token


def form_post(client, page_url, data, post_url=None, **kw):
    """GET the page, take its CSRF token, POST the form — what a browser does."""
    page = client.get(page_url)
    data = dict(data, csrf_token=csrf_token(page.get_data(as_text=True)))
    return client.post(post_url or page_url, data=data, **kw)


def login(client, email="alice@example.com", password=PASSWORD):
    return form_post(client, "/login", {"email": email, "password": password})


def strip_volatile(html: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', html)
