import os

from django.core.asgi import get_asgi_application

from config.body_limit import asgi_body_limit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
# Django's ASGI handler reads a whole body before any middleware runs: the cap is counted here.
application = asgi_body_limit(get_asgi_application())
