"""Range (k-anonymity) client against a local HTTP server started by the test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from breach_helpers import sha1_hex

from authsvc.breach import BreachCheckUnavailable, RangeBreachChecker

BREACHED = {"hunter2": 17, "correct horse": 3}
PADDED_PASSWORD = "padding-only"


class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str | None]]] = []
    mode: ClassVar[str] = "ok"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        type(self).requests.append((self.path, self.headers.get("Add-Padding")))
        if self.mode == "slow":
            time.sleep(1.0)
        if self.mode == "500":
            self.send_response(500)
            self.end_headers()
            return
        prefix = self.path.rsplit("/", 1)[-1]
        lines = [f"{sha1_hex(p)[5:]}:{c}" for p, c in BREACHED.items() if sha1_hex(p).startswith(prefix)]
        lines.append(f"{'0' * 35}:0")
        if sha1_hex(PADDED_PASSWORD).startswith(prefix):
            lines.append(f"{sha1_hex(PADDED_PASSWORD)[5:]}:0")  # padding row for the queried hash itself
        body = ("\r\n".join(lines) if self.mode != "garbage" else "<html>oops</html>").encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    _Handler.mode = "ok"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_found_not_found_and_k_anonymity(server: str) -> None:
    checker = RangeBreachChecker(server, timeout=2.0)
    assert checker.is_breached("hunter2")
    assert checker.check("correct horse").count == 3
    assert not checker.is_breached("definitely-not-breached-Zx81")
    path, padding = _Handler.requests[0]
    assert path == f"/range/{sha1_hex('hunter2')[:5]}" and padding == "true"  # only 5 hex digits sent


def test_padding_rows_ignored(server: str) -> None:
    result = RangeBreachChecker(server).check(PADDED_PASSWORD)
    assert result.breached is False and result.count == 0 and not result.degraded


def test_min_count(server: str) -> None:
    assert not RangeBreachChecker(server, min_count=5).is_breached("correct horse")
    assert RangeBreachChecker(server, min_count=5).is_breached("hunter2")


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on (bound then closed)
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_server_down_fail_closed_raises() -> None:
    with pytest.raises(BreachCheckUnavailable) as info:
        RangeBreachChecker(_dead_url(), timeout=1.0, fail_closed=True).is_breached("hunter2")
    assert info.value.reason == "connection" and "/range/" in (info.value.source or "")


def test_server_down_fail_open_returns_false_and_flags(caplog: pytest.LogCaptureFixture) -> None:
    checker = RangeBreachChecker(_dead_url(), timeout=1.0, fail_closed=False)
    result = checker.check("hunter2")
    assert result.breached is False and result.degraded and result.error
    assert checker.is_breached("hunter2") is False
    assert checker.degraded_count == 2
    assert any("failing OPEN" in r.message for r in caplog.records)


def test_timeout(server: str) -> None:
    _Handler.mode = "slow"
    started = time.monotonic()
    with pytest.raises(BreachCheckUnavailable) as info:
        RangeBreachChecker(server, timeout=0.2).is_breached("hunter2")
    assert info.value.reason == "timeout" and time.monotonic() - started < 0.9


def test_http_error_and_garbage_are_unavailable(server: str) -> None:
    _Handler.mode = "500"
    with pytest.raises(BreachCheckUnavailable, match="HTTP 500"):
        RangeBreachChecker(server).is_breached("hunter2")
    _Handler.mode = "garbage"
    with pytest.raises(BreachCheckUnavailable) as info:
        RangeBreachChecker(server).is_breached("hunter2")
    assert info.value.reason == "malformed"
    assert RangeBreachChecker(server, fail_closed=False).check("hunter2").degraded
