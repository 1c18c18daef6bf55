"""gunicorn wsgi:app"""

from authsvc import create_app

app = create_app()
