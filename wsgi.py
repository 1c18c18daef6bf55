"""gunicorn wsgi:app from a checkout (an installed authsvc: gunicorn authsvc.wsgi:app)."""

from authsvc.wsgi import app  # noqa: F401
