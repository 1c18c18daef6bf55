"""The WSGI entry point of an installed authsvc: ``gunicorn authsvc.wsgi:app`` / ``granian --interface wsgi
authsvc.wsgi:app`` (``authsvc serve`` runs exactly this). The checkout's top-level wsgi.py re-exports it."""

from authsvc import create_app

app = create_app()
