"""WSGI entry point (gunicorn `cellar_server.wsgi`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")

application = get_wsgi_application()
