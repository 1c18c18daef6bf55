"""Issue 12 item 7: single-use links (reset, verify, not-me, setup, recovery) must not be written to the access log.
A real `authsvc serve` (gunicorn, its access log on stdout) on this test's database and Redis; the log file is read
after the server stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.functional.test_granian import _env

from authsvc.web.accesslog import redact_request_line, redact_uri

SECRETS = {
    "reset": "RsT0kenAAAAbbbbCCCCdddd1234567890",
    "verify": "VfT0kenAAAAbbbbCCCCdddd1234567890",
    "not-me": "NmT0kenAAAAbbbbCCCCdddd1234567890",
    "setup": "StT0kenAAAAbbbbCCCCdddd1234567890",
    "recover": "RcT0kenAAAAbbbbCCCCdddd1234567890",
}


def test_tokens_are_redacted_from_urls():
    assert redact_uri("/reset/abc?next=/x") == "/reset/[redacted]?next=[redacted]"
    assert redact_uri("https://login.example.com/not-me/tok") == "https://login.example.com/not-me/[redacted]"
    assert redact_uri("/device?user_code=WDJB-MJHT") == "/device?user_code=[redacted]"
    assert redact_uri("/oauth2/authorize?client_id=c&state=s") == "/oauth2/authorize?client_id=c&state=[redacted]"
    assert redact_uri("/admin/users/5") == "/admin/users/5" and redact_uri("/static/js/webauthn.js").endswith(".js")
    assert redact_request_line("GET /verify/abc HTTP/1.1") == "GET /verify/[redacted] HTTP/1.1"


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_the_real_servers_access_log_has_no_single_use_tokens(app, tmp_path, server):
    if server == "granian":
        pytest.importorskip("granian")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = os.path.join(os.path.dirname(sys.executable), "authsvc")
    log_path = tmp_path / "access.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([cli, "serve", "--server", server, "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", "1"],
                                env=_env(app), start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if requests.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.2)
            for kind, token in SECRETS.items():
                requests.get(f"{base}/{kind}/{token}", timeout=10,
                             headers={"Referer": f"{base}/{kind}/{token}?again={token}"})
            requests.get(f"{base}/device", params={"user_code": "WDJBMJHT"}, timeout=10)
            requests.get(f"{base}/login", params={"next": f"/reset/{SECRETS['reset']}"}, timeout=10)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    text = log_path.read_text()
    assert "GET " in text and " 200 " in text  # the access log is on, and this is it
    for kind, token in SECRETS.items():
        assert token not in text, kind
        if server == "gunicorn":  # granian cannot rewrite its log lines: it logs no path at all
            assert f"/{kind}/[redacted]" in text, kind
    assert "WDJBMJHT" not in text
