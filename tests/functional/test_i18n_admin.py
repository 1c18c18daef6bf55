"""The admin panel in the operator's language (issue 18, admin scope): every admin page, flash, form error and
confirmation prompt translated; dates in the admin's language and zone; durations in the admin's units. Data (audit
tags, hashes, ids, e-mail addresses, client names, stored reasons) is shown as stored. Attacker's tests first: a
hostile value on a translated page is escaped and never format-interpreted. Then the guard: every admin page rendered
in German, with data in it, holds no English sentence of its English rendering and no catalogue msgid untranslated.
Real SQL, real Redis."""

import datetime as dt
import json
import re
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po

from authsvc.i18n import LANGUAGES, TRANSLATIONS
from tests.conftest import csrf_token, create_user
from tests.functional.admin_helpers import admin_client, confirmed_post, ticket_of
from tests.functional.helpers import login

HOSTILE = "{x} %(x)s %s {0} <script>alert(1)</script> \u202eevil\u202c"
HOSTILE_EMAIL = "%(x)s{x}<script>alert(1)</script>\u202e@example.com"


def _set(app, uid, **fields):
    from authsvc.extensions import db
    from authsvc.models import User

    with app.app_context():
        user = db.session.get(User, uid)
        for k, v in fields.items():
            setattr(user, k, v)
        db.session.commit()


def _record(app, tag, **kw):
    from authsvc.services import services

    with app.app_context():
        services().audit.record(tag, kw.pop("outcome", "success"), **kw)


def _new_client(app, name, client_type="confidential"):
    with app.app_context():
        created, _secret = app.extensions["authsvc.oauth"].clients.create(
            client_type=client_type, actor_id=None, name=name, redirect_uris=["https://photos.example/cb"],
            grant_types=["authorization_code", "refresh_token"], scopes=["openid", "email"], token_format="opaque",
            quota_per_minute=120)
        return created.id


def _failures(app, email, n=4, ip="203.0.113.9"):
    """Failed sign-ins through the real login form (throttle marks in Redis, receipts in SQL)."""
    client = app.test_client()
    for _ in range(n):
        page = client.get("/login").get_data(as_text=True)
        client.post("/login", data={"csrf_token": csrf_token(page), "email": email, "password": "wrong password " * 2},
                    environ_base={"REMOTE_ADDR": ip})


def _escaped(html: str):
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Traceback" not in html


# --- attacker first ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "de", "nb", "es", "pt-BR"])
def test_hostile_values_on_translated_admin_pages_are_escaped_and_never_format_interpreted(app, lang):
    admin = admin_client(app)
    h = {"Accept-Language": lang}
    bob = create_user(app, email="bob@example.com")
    _set(app, bob, email=HOSTILE_EMAIL)
    _record(app, "admin:user:disable", actor_id=admin.user_id, subject_id=bob, reason=HOSTILE,
            details={"reason": HOSTILE, "note": "%(email)s"})
    client_id = _new_client(app, HOSTILE)

    for path in ("/admin/users", f"/admin/users/{bob}", "/admin/audit", "/admin/oauth",
                 f"/admin/oauth/{client_id}/edit", f"/admin/audit?subject={bob}"):
        r = admin.get(path, headers=h)
        html = r.get_data(as_text=True)
        assert r.status_code == 200, path
        _escaped(html)
        assert "%(x)s" in html and "{x}" in html, path  # shown literally, not interpreted (no KeyError, no 500)
        assert "\u202e" in html or path.startswith("/admin/audit"), path  # stored as it is; the page escapes markup
    # The search box: the query comes back in the translated "N results for … “q”" sentence.
    r = admin.get("/admin/users", query_string={"q": HOSTILE}, headers=h)
    assert r.status_code == 200
    _escaped(r.get_data(as_text=True))
    assert "%(x)s" in r.get_data(as_text=True)
    # The confirmation page: the title is "Disable %(email)s" in the admin's language, the e-mail substituted once.
    page = admin.get(f"/admin/users/{bob}", headers=h).get_data(as_text=True)
    first = admin.post(f"/admin/users/{bob}/disable", data={"csrf_token": csrf_token(page)}, headers=h)
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and 'name="ticket"' in body
    _escaped(body)
    assert body.count("%(x)s{x}") >= 2  # the title and the target row: substituted, not formatted again
    # A flash naming the hostile client ("Saved “%(name)s”.") after an edit in that language.
    edit = admin.get(f"/admin/oauth/{client_id}/edit", headers=h).get_data(as_text=True)
    r = admin.post(f"/admin/oauth/{client_id}/edit", headers=h, data={
        "csrf_token": csrf_token(edit), "name": HOSTILE + " 2", "client_type": "confidential", "redirect_uris": "https://photos.example/cb",
        "grant_types": ["authorization_code"], "scopes": ["openid"], "token_format": "opaque",
        "quota_per_minute": "60"})
    assert r.status_code == 302, r.get_data(as_text=True)[-3000:]
    listing = admin.get("/admin/oauth", headers=h).get_data(as_text=True)
    _escaped(listing)
    assert "%(x)s" in listing and "{x}" in listing


@pytest.mark.parametrize("uri", ["http://evil.example/%(x)s<script>alert(1)</script>", "https://a.example/cb#{x}%(uri)s",
                                 "https://a.example:99999/<script>alert(1)</script>"])
def test_oauth_form_errors_with_a_hostile_uri_are_translated_escaped_and_substituted_once(app, uri):
    admin = admin_client(app)
    h = {"Accept-Language": "de"}
    page = admin.get("/admin/oauth/new", headers=h).get_data(as_text=True)
    r = admin.post("/admin/oauth/new", headers=h, data={
        "csrf_token": csrf_token(page), "name": "Shop", "client_type": "confidential", "redirect_uris": uri,
        "grant_types": ["authorization_code"], "scopes": ["openid"], "token_format": "opaque", "quota_per_minute": "60"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "Traceback" not in html and "<script>alert(1)" not in html
    assert re.search(r"darf kein Fragment enthalten|muss https, eine http-Loopback-IP|hat einen ungültigen Port|"
                     r"darf keine Benutzerangaben", html)
    assert "must be https" not in html and "must not contain" not in html and "invalid port" not in html
    for token in ("%(x)s", "%(uri)s", "{x}"):  # the value shown as typed, never formatted again
        assert token not in uri or token in html, token
    with app.app_context():  # the CLI and the API keep English
        from authsvc.oauth.clients import ClientError, validate_redirect_uri

        with pytest.raises(ClientError) as exc:
            validate_redirect_uri(uri)
        assert exc.value.message.startswith(repr(uri)) and exc.value.shown() == exc.value.message


@pytest.mark.parametrize("value", ["%(x)s", "{0}", "%s%s%s%n", "<b>x</b>", "\u202e", "x" * 5000, "de\x00",
                                   "actor%(field)s"])
def test_hostile_audit_filters_come_back_translated_escaped_and_never_fail(app, value):
    admin = admin_client(app)
    for lang in ("de", "en"):
        r = admin.get("/admin/audit", query_string={"actor": value, "since": value}, headers={"Accept-Language": lang})
        html = r.get_data(as_text=True)
        assert r.status_code == 200 and "Traceback" not in html
        assert "<b>x</b>" not in html
    de = admin.get("/admin/audit", query_string={"actor": "nobody", "since": "soon"},
                   headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Akteur: Geben Sie eine Benutzer-ID oder eine E-Mail-Adresse ein" in de
    assert "ab: verwenden Sie JJJJ-MM-TT" in de
    # A bad id bound in the export (a 400 page, in the admin's language, never a 500).
    r = admin.get("/admin/audit?before=x", headers={"Accept-Language": "de"})
    assert r.status_code == 400


# --- the operator's language and zone ------------------------------------------------------------------------------
def test_an_admin_with_german_set_gets_german_everywhere_and_an_english_admin_keeps_english(app):
    german = admin_client(app)
    english = admin_client(app, email="second-admin@example.com")
    _set(app, german.user_id, locale="de", timezone="Asia/Kolkata")
    _set(app, english.user_id, locale="en")
    bob = create_user(app, email="bob@example.com")
    _failures(app, "bob@example.com")
    _record(app, "account:login:failure", subject_id=bob, outcome="failure", reason="bad_password")
    expect = {  # path → (a German text on it, the English text it replaces)
        "/admin/": ("Anmeldungen pro Stunde (letzte 24 Stunden)", "Sign-ins per hour (last 24 hours)"),
        "/admin/users": ("Die neuesten 100 Konten.", "Newest 100 accounts."),
        f"/admin/users/{bob}": ("Anmeldeverlauf und Risikobelege", "Sign-in history and risk receipts"),
        "/admin/users/new": ("Konto anlegen und Link senden", "Create account and send the link"),
        "/admin/attacks": ("Zähler unter ihren Grenzen", "Counters below their limits"),
        "/admin/audit": ("Audit-Ereignisse, neueste zuerst", "Audit events, newest first"),
        "/admin/jobs": ("Audit-Export", "Audit export"),
        "/admin/oauth": ("Neuer Client", "New client"),
        "/admin/oauth/new": ("Neuer OAuth-Client", "New OAuth client"),
    }
    with app.app_context():
        de = read_po(open(f"{TRANSLATIONS}/de/LC_MESSAGES/messages.po", "rb"), locale="de")
    for path, (german_text, english_text) in expect.items():
        # The account's setting wins over the browser's header, both ways.
        g = german.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
        e = english.get(path, headers={"Accept-Language": "de"}).get_data(as_text=True)
        assert '<html lang="de">' in g and '<html lang="en">' in e, path
        if de.get(english_text) is not None:  # the German text is the catalogue's translation of the English one
            assert de.get(english_text).string == german_text, path
        assert german_text in g and english_text not in g, path
        assert english_text in e and german_text not in e, path
        assert "Übersicht" in g and "Audit-Protokoll" in g  # the panel's navigation
    # Times on admin pages: the admin's zone (Kolkata, UTC+5:30) and German format, ISO UTC kept in datetime="…".
    from authsvc.extensions import db
    from authsvc.models import SecurityEvent

    with app.app_context():
        ev = db.session.execute(db.select(SecurityEvent).order_by(SecurityEvent.id.desc())).scalars().first()
        at = ev.occurred_at.replace(tzinfo=dt.UTC)
    local = at.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    g = german.get("/admin/audit").get_data(as_text=True)
    assert f'<time datetime="{ev.occurred_at.isoformat()}">{local.strftime("%d.%m.%Y, %H:%M:%S")}</time>' in g
    e = english.get("/admin/audit").get_data(as_text=True)
    assert re.search(r'<time datetime="[^"]+">[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2}\s?[AP]M</time>', e)
    # Durations in the admin's units: a block's time left on the attacks page.
    assert re.search(r"\d+ (Min\.|Std\.|Sek\.|Tg\.)", german.get("/admin/attacks").get_data(as_text=True))
    assert re.search(r"\d+ (min|hr|sec|days?)\b", english.get("/admin/attacks").get_data(as_text=True))


def test_flashes_and_form_errors_of_the_panel_speak_the_admins_language(app):
    admin = admin_client(app)
    _set(app, admin.user_id, locale="nb")
    bob = create_user(app, email="bob@example.com")
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/end-sessions")
    assert r.status_code == 302
    assert login(app.test_client(), email="bob@example.com").status_code == 302
    r = confirmed_post(admin, f"/admin/users/{bob}", f"/admin/users/{bob}/end-sessions")
    html = admin.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert r.status_code == 302 and "Avsluttet 1 økt." in html and "Ended 1 session" not in html
    page = admin.get("/admin/users/new").get_data(as_text=True)
    r = admin.post("/admin/users/new", data={"csrf_token": csrf_token(page), "email": ""})
    assert r.status_code == 400 and '<html lang="nb">' in r.get_data(as_text=True)
    # A confirmation without a reason: the error in Norwegian.
    page = admin.get(f"/admin/users/{bob}").get_data(as_text=True)
    body = admin.post(f"/admin/users/{bob}/unlock", data={"csrf_token": csrf_token(page)}).get_data(as_text=True)
    r = admin.post(f"/admin/users/{bob}/unlock", data={"csrf_token": csrf_token(body), "ticket": ticket_of(body),
                                                      "reason": "x"})
    assert r.status_code == 400
    with app.app_context():
        nb = read_po(open(f"{TRANSLATIONS}/nb/LC_MESSAGES/messages.po", "rb"), locale="nb")
    wanted = nb.get("Give a reason of at least %(n)s characters.").string.split("%(n)s")[0].strip()
    assert wanted and wanted in r.get_data(as_text=True)


# --- the guard: no English left on any admin page in German ---------------------------------------------------------
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP_TAGS = {"script", "style", "code", "pre"}
_DATA_CLASSES = {"mono", "data-raw"}  # data shown as stored: hashes, ids, tags, raw audit details, reasons


class _Visible(HTMLParser):
    """The text a reader sees (and aria-label / title / placeholder / alt), without data shown as stored."""

    def __init__(self):
        super().__init__()
        self.stack = []  # one flag per open element: inside data or script
        self.texts = []

    def _skipping(self):
        return any(self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        skip = tag in _SKIP_TAGS or bool(_DATA_CLASSES & set((a.get("class") or "").split()))
        if not skip and not self._skipping():
            for name in ("aria-label", "title", "placeholder", "alt"):
                if a.get(name):
                    self.texts.append(" ".join(a[name].split()))
        if tag not in _VOID:
            self.stack.append(skip)

    def handle_endtag(self, tag):
        if tag not in _VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        text = " ".join(data.split())
        if text and not self._skipping():
            self.texts.append(text)


def _visible(html: str) -> list[str]:
    p = _Visible()
    p.feed(html)
    return p.texts


def _sentences(texts, data) -> set:
    return {t for t in texts if len(re.findall(r"[A-Za-z]{2,}", t)) >= 3 and t not in LANGUAGES.values()
            and not any(d in t for d in data)}


_WORDS = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def _english_fragments(catalog) -> set:
    """Literal pieces of the catalogue's msgids (between placeholders) of three words or more whose translation is
    different: if one of them is on a German page, someone forgot to mark or to translate it."""
    out = set()
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if any(i in strings for i in ids):
            continue  # the same in German (a name, an acronym)
        for piece in re.split(r"%\(\w+\)[sd]|%[sd]", ids[0]):
            piece = " ".join(piece.split()).strip(" .,:;·()")
            if len(_WORDS.findall(piece)) >= 3:
                out.add(piece)
    return out


def _admin_pages(app):
    """Every admin page with data in it (users, an audit row, a job, an OAuth client, an outbox row, a pending
    confirmation, a flash, throttle marks and failed sign-ins), each rendered by a function of the language."""
    from authsvc.services import services

    admin = admin_client(app)
    bob = create_user(app, email="bob@example.com")
    carol = create_user(app, email="carol@example.com", verified=False)
    _set(app, carol, must_change_password=True)
    assert login(app.test_client(), email="bob@example.com").status_code == 302  # a live session and a receipt
    _failures(app, "bob@example.com", n=6)
    _failures(app, "nobody-here@example.com", n=3, ip="198.51.100.23")
    _record(app, "admin:user:disable", actor_id=admin.user_id, subject_id=bob, reason="Support ticket 4711 by phone",
            details={"reason": "Support ticket 4711: owner asked by phone"})
    client_id = _new_client(app, "Photo-Print")
    _new_client(app, "Kiosk", client_type="public")
    with app.app_context():
        services().clock.advance(1)
    page = admin.get("/admin/users/new").get_data(as_text=True)
    assert admin.post("/admin/users/new", data={"csrf_token": csrf_token(page),
                                                "email": "dave@example.com"}).status_code == 302  # an outbox row
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert admin.post("/admin/audit/export-job", data={"csrf_token": csrf_token(page)}).status_code == 302  # a job
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert admin.post("/admin/audit/verify-job", data={"csrf_token": csrf_token(page)}).status_code == 302

    def get(path, status=200):
        def render(lang):
            r = admin.get(path, headers={"Accept-Language": lang})
            assert r.status_code == status, (path, r.status_code)
            return r.get_data(as_text=True)
        return render

    def confirmation(action, target=None):
        def render(lang):
            h = {"Accept-Language": lang}
            page = admin.get(f"/admin/users/{bob}", headers=h).get_data(as_text=True)
            data = {"csrf_token": csrf_token(page)}
            if target:
                data["target"] = target
            r = admin.post(f"/admin/users/{bob}/{action}", data=data, headers=h)
            assert r.status_code == 200 and 'name="ticket"' in r.get_data(as_text=True)
            return r.get_data(as_text=True)
        return render

    def bulk_confirmation(lang):
        h = {"Accept-Language": lang}
        page = admin.get("/admin/users", headers=h).get_data(as_text=True)
        r = admin.post("/admin/users/bulk", headers=h, data={"csrf_token": csrf_token(page), "action": "disable",
                                                              "ids": [str(bob), str(admin.user_id), "999999"]})
        assert r.status_code == 200
        return r.get_data(as_text=True)

    def unblock_confirmation(lang):
        h = {"Accept-Language": lang}
        page = admin.get("/admin/attacks", headers=h).get_data(as_text=True)
        r = admin.post("/admin/attacks/unblock", headers=h,
                       data={"csrf_token": csrf_token(page), "target": "ip:203.0.113.9"})
        assert r.status_code == 200
        return r.get_data(as_text=True)

    def after_action(lang):  # a flash, then the user page
        h = {"Accept-Language": lang}
        html = admin.get(f"/admin/users/{bob}", headers=h).get_data(as_text=True)
        first = admin.post(f"/admin/users/{bob}/require-password-change", headers=h,
                           data={"csrf_token": csrf_token(html)}).get_data(as_text=True)
        r = admin.post(f"/admin/users/{bob}/require-password-change", headers=h, data={
            "csrf_token": csrf_token(first), "ticket": ticket_of(first), "reason": "Support ticket 4711 by phone"})
        assert r.status_code == 302
        return admin.get(f"/admin/users/{bob}", headers=h).get_data(as_text=True)

    def wrong_reason(lang):
        h = {"Accept-Language": lang}
        html = admin.get(f"/admin/users/{bob}", headers=h).get_data(as_text=True)
        first = admin.post(f"/admin/users/{bob}/unlock", headers=h,
                           data={"csrf_token": csrf_token(html)}).get_data(as_text=True)
        r = admin.post(f"/admin/users/{bob}/unlock", headers=h, data={
            "csrf_token": csrf_token(first), "ticket": ticket_of(first), "reason": "x"})
        assert r.status_code == 400
        return r.get_data(as_text=True)

    def new_user_refused(lang):
        h = {"Accept-Language": lang}
        html = admin.get("/admin/users/new", headers=h).get_data(as_text=True)
        return admin.post("/admin/users/new", headers=h, data={"csrf_token": csrf_token(html),
                                                               "email": "bob@example.com"}).get_data(as_text=True)

    def client_created(lang):
        h = {"Accept-Language": lang}
        html = admin.get("/admin/oauth/new", headers=h).get_data(as_text=True)
        r = admin.post("/admin/oauth/new", headers=h, data={
            "csrf_token": csrf_token(html), "name": "Shop", "client_type": "confidential",
            "redirect_uris": "https://shop.example/cb", "grant_types": ["authorization_code"], "scopes": ["openid"],
            "token_format": "opaque", "quota_per_minute": "60"})
        assert r.status_code == 200
        return r.get_data(as_text=True)

    def client_refused(lang):
        h = {"Accept-Language": lang}
        html = admin.get("/admin/oauth/new", headers=h).get_data(as_text=True)
        r = admin.post("/admin/oauth/new", headers=h, data={
            "csrf_token": csrf_token(html), "name": "Shop", "client_type": "public",
            "redirect_uris": "http://shop.example/cb", "grant_types": ["authorization_code", "client_credentials"],
            "scopes": ["openid"], "token_format": "jwt", "access_token_ttl": "3600", "quota_per_minute": "60",
            "backchannel_logout_uri": "http://127.0.0.1/logout"})
        assert r.status_code == 400
        return r.get_data(as_text=True)

    def need_mfa(lang):
        other = app.test_client()
        assert login(other, email="third-admin@example.com").status_code == 302
        r = other.get("/admin/", headers={"Accept-Language": lang})
        assert r.status_code == 403
        return r.get_data(as_text=True)

    create_user(app, email="third-admin@example.com", is_admin=True)  # an administrator without a second factor
    pages = {
        "dashboard": get("/admin/"), "users": get("/admin/users"), "users, by IP": get("/admin/users?q=203.0.113.9"),
        "users, none": get("/admin/users?q=zzz-nobody"), "user": get(f"/admin/users/{bob}"),
        "user, unverified": get(f"/admin/users/{carol}"), "new user": get("/admin/users/new"),
        "new user, refused": new_user_refused, "attacks": get("/admin/attacks"), "audit": get("/admin/audit"),
        "audit, bad filters": get("/admin/audit?actor=nobody&since=soon"),
        "audit, none": get("/admin/audit?tag=zzz"), "jobs": get("/admin/jobs"), "outbox": get("/admin/outbox"),
        "oauth": get("/admin/oauth"), "oauth, new": get("/admin/oauth/new"),
        "oauth, edit": get(f"/admin/oauth/{client_id}/edit"), "oauth, created": client_created, "oauth, refused": client_refused,
        "confirm disable": confirmation("disable"), "confirm end sessions": confirmation("end-sessions"),
        "confirm reset factors": confirmation("reset-factors"), "confirm unlock": confirmation("unlock"),
        "confirm bulk": bulk_confirmation, "confirm unblock": unblock_confirmation,
        "reason refused": wrong_reason, "flash after an action": after_action, "need MFA": need_mfa,
        "sign-in providers": get("/admin/idp/"),
    }
    # Data shown as stored, in every language: reasons, client names, addresses, URIs, tag names.
    data = ("Support ticket 4711", "Photo-Print", "example.com", "https://", "http://", "admin: / account:login")
    return pages, data


@pytest.mark.parametrize("locale", ["de"])
def test_every_admin_page_in_german_holds_no_english_sentence_nor_untranslated_msgid(app, locale):
    pages, data = _admin_pages(app)
    with open(f"{TRANSLATIONS}/{locale}/LC_MESSAGES/messages.po", "rb") as f:
        fragments = _english_fragments(read_po(f, locale=locale))
    assert len(fragments) > 100  # the catalogue was read
    problems = []
    for name, render in pages.items():
        english = _visible(render("en"))
        assert _sentences(english, data), name  # the English page has text to compare
        html = render(locale)
        assert f'<html lang="{locale}">' in html, name
        german = _visible(html)
        left = _sentences(english, data) & _sentences(german, data)
        if left:
            problems.append((name, "English sentence", sorted(left)))
        joined = "\n".join(german)
        found = sorted(f for f in fragments if re.search(r"(?<![A-Za-z])" + re.escape(f) + r"(?![A-Za-z])", joined))
        if found:
            problems.append((name, "untranslated msgid", found))
    assert problems == [], "\n".join(map(repr, problems))


def test_the_guard_fails_on_an_english_sentence_left_on_a_german_admin_page():
    """The guard itself: an unmarked sentence, or a marked one shown untranslated, is caught; data is not."""
    with open(f"{TRANSLATIONS}/de/LC_MESSAGES/messages.po", "rb") as f:
        fragments = _english_fragments(read_po(f, locale="de"))
    html = ('<html lang="de"><p>Im Moment ist nichts gesperrt.</p><p>No SMTP server is configured, so e-mail is kept here instead of being sent.</p>'
            '<td class="mono">failures on unknown accounts</td><button aria-label="Filter the audit log">x</button>')
    german = _visible(html)
    assert "failures on unknown accounts" not in " ".join(german)  # data (class="mono") is left out
    joined = "\n".join(german)
    assert {f for f in fragments if f in joined} >= {"No SMTP server is configured, so e-mail is kept here instead of being sent",
                                                   "Filter the audit log"}
    english = _visible('<p>Nothing is blocked right now.</p><p>No SMTP server is configured, so e-mail is kept here instead of being sent.</p>')
    assert _sentences(english, ()) & _sentences(german, ()) == {"No SMTP server is configured, so e-mail is kept here instead of being sent."}
