"""authsvc/web/deadline.py: the per-request time limit, on a bare WSGI callable (no Flask, no server)."""
from __future__ import annotations

import threading
import time

import pytest

from authsvc.web.deadline import RequestDeadline


def _app(body=(b"ok",), fail=False, wait: threading.Event | None = None):
    def app(environ, start_response):
        if wait is not None:
            wait.wait(5)
        if fail:
            raise RuntimeError("boom")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return list(body)
    return app


def _call(mw, path="/x"):
    return mw({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda *a: None)


def test_a_request_is_running_until_its_response_is_closed_streaming_included():
    mw = RequestDeadline(_app(), 5, exit=lambda code: None)
    out = _call(mw)
    assert list(out) == [b"ok"]
    assert mw.overdue(time.monotonic() + 10) == ["GET /x"]  # not closed yet: still counted (a slow download)
    out.close()
    assert mw.overdue(time.monotonic() + 10) == []


def test_an_exception_in_the_app_ends_the_count():
    mw = RequestDeadline(_app(fail=True), 5, exit=lambda code: None)
    with pytest.raises(RuntimeError):
        _call(mw)
    assert mw.overdue(time.monotonic() + 10) == []


def test_the_inner_iterables_close_is_called():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    mw = RequestDeadline(lambda e, s: Body([b"x"]), 5, exit=lambda code: None)
    _call(mw).close()
    assert closed == [True]


def test_an_overdue_request_ends_the_process_and_names_the_request(caplog):
    exited = threading.Event()
    codes = []

    def fake_exit(code):
        codes.append(code)
        exited.set()

    release = threading.Event()
    mw = RequestDeadline(_app(wait=release), 0.2, tick=0.05, exit=fake_exit)
    t = threading.Thread(target=_call, args=(mw, "/slow/" + "p" * 500))
    t.start()
    try:
        assert exited.wait(5), "the watchdog did not fire"
    finally:
        release.set()
        t.join()
    assert codes == [70]
    assert "GET /slow/ppp" in caplog.text and "p" * 300 not in caplog.text  # the path is cut in the log line


def test_a_request_within_the_limit_never_fires():
    codes = []
    mw = RequestDeadline(_app(), 0.5, tick=0.05, exit=codes.append)
    for _ in range(5):
        _call(mw).close()
    time.sleep(0.8)
    assert codes == []


@pytest.mark.parametrize("seconds", [0, -1])
def test_the_limit_must_be_positive(seconds):
    with pytest.raises(ValueError):
        RequestDeadline(_app(), seconds)
