"""A single-page app on another origin does code + PKCE + DPoP against authsvc in Chromium: WebCrypto makes the
PKCE challenge and the DPoP key (P-256) and proofs, fetch() calls the token and userinfo endpoints cross-origin, and
CORS lets it read the answers because the client registered that origin. A page on an unregistered origin cannot
read them. Console errors (a CORS refusal is one) fail the test for the SPA's own context."""

from __future__ import annotations

import http.server
import threading

from tests.conftest import PASSWORD, create_user
from tests.functional.oauth_helpers import register

SPA_HTML = r"""<!doctype html><html><head><meta charset="utf-8"><title>SPA</title></head><body>
<p id="out">starting</p>
<script>
const AS = "__AS__", CID = "__CID__", CB = location.origin + "/cb";
const b64u = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g,"-").replace(/\//g,"_").replace(/=+$/,"");
const txt = s => new TextEncoder().encode(s);
const sha = async s => new Uint8Array(await crypto.subtle.digest("SHA-256", txt(s)));
async function keyPair() {
  let jwk = sessionStorage.getItem("dpop");
  if (!jwk) {
    const kp = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, true, ["sign", "verify"]);
    jwk = JSON.stringify(await crypto.subtle.exportKey("jwk", kp.privateKey));
    sessionStorage.setItem("dpop", jwk);
  }
  const priv = JSON.parse(jwk);
  const pub = {kty: "EC", crv: "P-256", x: priv.x, y: priv.y};
  const key = await crypto.subtle.importKey("jwk", priv, {name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
  const jkt = b64u(await sha(JSON.stringify({crv: pub.crv, kty: pub.kty, x: pub.x, y: pub.y})));
  return {key, pub, jkt};
}
async function proof(k, htm, htu, at) {
  const h = {typ: "dpop+jwt", alg: "ES256", jwk: k.pub};
  const c = {jti: b64u(crypto.getRandomValues(new Uint8Array(16))), htm, htu, iat: Math.floor(Date.now() / 1000)};
  if (at) c.ath = b64u(await sha(at));
  const input = b64u(txt(JSON.stringify(h))) + "." + b64u(txt(JSON.stringify(c)));
  const sig = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, k.key, txt(input));
  return input + "." + b64u(sig);
}
(async () => {
  const out = document.getElementById("out");
  const k = await keyPair();
  const q = new URLSearchParams(location.search);
  if (!q.get("code")) {
    const verifier = b64u(crypto.getRandomValues(new Uint8Array(32)));
    sessionStorage.setItem("verifier", verifier);
    const p = new URLSearchParams({response_type: "code", client_id: CID, redirect_uri: CB, scope: "openid email",
      state: "spa", code_challenge: b64u(await sha(verifier)), code_challenge_method: "S256", dpop_jkt: k.jkt});
    location.assign(AS + "/oauth2/authorize?" + p);
    return;
  }
  const body = new URLSearchParams({grant_type: "authorization_code", code: q.get("code"), redirect_uri: CB,
    client_id: CID, code_verifier: sessionStorage.getItem("verifier")});
  const t = await fetch(AS + "/oauth2/token", {method: "POST", body,
    headers: {DPoP: await proof(k, "POST", AS + "/oauth2/token")}});
  const tok = await t.json();
  if (tok.token_type !== "DPoP") { out.textContent = "token: " + JSON.stringify(tok); return; }
  const u = await fetch(AS + "/oauth2/userinfo", {headers: {Authorization: "DPoP " + tok.access_token,
    DPoP: await proof(k, "GET", AS + "/oauth2/userinfo", tok.access_token)}});
  const info = await u.json();
  const r = await fetch(AS + "/oauth2/token", {method: "POST",
    body: new URLSearchParams({grant_type: "refresh_token", refresh_token: tok.refresh_token, client_id: CID}),
    headers: {DPoP: await proof(k, "POST", AS + "/oauth2/token")}});
  const again = await r.json();
  out.textContent = "email=" + info.email + " type=" + tok.token_type + " refreshed=" + again.token_type;
})().catch(e => { document.getElementById("out").textContent = "error: " + e; });
</script></body></html>"""


class _Site:
    """A static site on its own origin (http://127.0.0.1:PORT) serving ``html`` at every path."""

    def __init__(self):
        outer = self
        self.html = b""

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(outer.html)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_spa_on_another_origin_does_code_pkce_dpop_in_chromium(app, live_server, browser_context, chromium):
    base = live_server.url
    app.config["OAUTH_ISSUER"] = base
    spa, evil = _Site(), _Site()
    try:
        create_user(app)
        cid, _ = register(app, client_type="public", name="Notes SPA", redirect_uris=[spa.origin + "/cb"],
                          allowed_origins=[spa.origin], scopes=["openid", "email"])
        spa.html = SPA_HTML.replace("__AS__", base).replace("__CID__", cid).encode()
        w = browser_context()
        page = w.page
        page.goto(spa.origin + "/")
        page.wait_for_url(base + "/login**")
        page.get_by_label("E-mail").fill("alice@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(spa.origin + "/cb**")
        page.locator("#out").filter(has_text="email=").wait_for(timeout=15000)
        assert page.locator("#out").inner_text() == "email=alice@example.com type=DPoP refreshed=DPoP"

        # The same calls from an origin the client did not register: the browser refuses to hand over the answer.
        evil.html = b"<!doctype html><title>evil</title><p>evil</p>"
        ctx = chromium.new_context()
        try:
            other = ctx.new_page()
            other.goto(evil.origin + "/")
            outcome = other.evaluate("""async (as) => {
                try { const r = await fetch(as + "/oauth2/token", {method: "POST",
                        body: new URLSearchParams({grant_type: "refresh_token", refresh_token: "x"})});
                      return "read " + r.status; }
                catch (e) { return "blocked"; } }""", base)
            assert outcome == "blocked"
        finally:
            ctx.close()
    finally:
        spa.close()
        evil.close()


def test_cross_site_post_authorization_and_logout_requests_keep_the_session_in_chromium(app, live_server,
                                                                                       browser_context):
    """OIDC Core §3.1.2.1 / RP-Initiated Logout §2 by POST from the RP's own site: the session cookie is
    SameSite=Lax, so the POST arrives without it; the server continues as a top-level GET, which carries it — the
    signed-in user gets a code without signing in again, and is really signed out by the logout POST."""
    base = live_server.url
    app.config["OAUTH_ISSUER"] = base
    rp = _Site()
    try:
        create_user(app)
        cid, secret = register(app, name="Post RP", redirect_uris=[rp.origin + "/cb"],
                               post_logout_redirect_uris=[rp.origin + "/bye"])
        w = browser_context()
        page = w.page
        page.goto(base + "/login")
        page.get_by_label("E-mail").fill("alice@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Your security").wait_for()

        def post_page(action, fields):
            inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
            return (f'<!doctype html><title>rp</title><form method="post" action="{action}">{inputs}'
                    f'<button type="submit">Go</button></form>').encode()

        from tests.functional.oauth_helpers import pkce

        verifier, challenge = pkce()
        rp.html = post_page(base + "/oauth2/authorize", {
            "response_type": "code", "client_id": cid, "redirect_uri": rp.origin + "/cb", "scope": "openid email",
            "state": "xs", "code_challenge": challenge, "code_challenge_method": "S256"})
        page.goto(rp.origin + "/start")
        page.get_by_role("button", name="Go").click()
        page.get_by_role("button", name="Allow").click()  # consent, not a login page: the session came along
        page.wait_for_url(rp.origin + "/cb**")
        assert "code=" in page.url and "state=xs" in page.url

        rp.html = post_page(base + "/oauth2/logout", {"client_id": cid,
                                                       "post_logout_redirect_uri": rp.origin + "/bye"})
        page.goto(rp.origin + "/logout")
        page.get_by_role("button", name="Go").click()
        page.locator("#main").get_by_role("button", name="Sign out").click()  # no valid hint: the user confirms
        page.goto(base + "/account")
        assert page.url.startswith(base + "/login")  # really signed out
    finally:
        rp.close()
