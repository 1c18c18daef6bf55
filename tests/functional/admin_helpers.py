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
