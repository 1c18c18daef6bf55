"""Sign an operator in the way a person does: password, then the TOTP code on /mfa/challenge (→ an aal2 session)."""

from authsvc.accounts.login import RequestContext
from tests.conftest import create_user
from tests.functional.helpers import login
from tests.functional.mfa_helpers import current_code, enrol_totp, next_step, submit_totp

ADMIN = "root@example.com"


def admin_client(app, email=ADMIN):
    uid = create_user(app, email=email, is_admin=True)
    secret = enrol_totp(app, uid)
    client = app.test_client()
    r = login(client, email=email)
    assert r.status_code == 302 and "/mfa/challenge" in r.headers["Location"], r.status_code
    r = submit_totp(client, current_code(app, secret))
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    next_step(app)
    client.totp_secret = secret
    client.user_id = uid
    return client


def audit_rows(app, tag):
    from sqlalchemy import select

    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        return list(db.session.execute(select(SecurityEvent).where(SecurityEvent.tag == tag)
                                       .order_by(SecurityEvent.id)).scalars())


CTX = RequestContext("198.51.100.7", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                     "Chrome/131.0.0.0 Safari/537.36")


def ticket_of(html: str) -> str:
    import re

    m = re.search(r'name="ticket" type="hidden" value="([^"]+)"', html) or re.search(
        r'type="hidden" name="ticket" value="([^"]+)"', html) or re.search(r'id="ticket"[^>]*value="([^"]+)"', html)
    assert m, html[:600]
    return m.group(1)


def confirmed_post(client, page, url, data=None, reason="Support ticket 4711: owner asked by phone"):
    """A destructive panel action the way an operator does it: the button (first POST → the confirmation page, which
    changes nothing), then the confirmation with a reason. Returns the second response."""
    from tests.conftest import csrf_token

    html = client.get(page).get_data(as_text=True)
    first = client.post(url, data=dict(data or {}, csrf_token=csrf_token(html)))
    if first.status_code != 200 or 'name="ticket"' not in first.get_data(as_text=True):
        return first  # refused before the confirmation (403, 404, a redirect)
    body = first.get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_token(body), "ticket": ticket_of(body), "reason": reason})
