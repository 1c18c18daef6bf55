"""The WSGI entry point of an installed authsvc: ``gunicorn authsvc.wsgi:app`` / ``granian --interface wsgi
authsvc.wsgi:app`` (``authsvc serve`` runs exactly this). The checkout's top-level wsgi.py re-exports it.

The Flask app is wrapped in a per-request time limit (``request_timeout``, web/deadline.py): granian has none of its
own for WSGI, and under gunicorn it fires just before gunicorn's (set 5 s later by ``authsvc serve``), with a log line
naming the request."""

from authsvc import create_app
from authsvc.web.deadline import RequestDeadline

flask_app = create_app()
app = RequestDeadline(flask_app, flask_app.config["AUTHSVC"].request_timeout)
