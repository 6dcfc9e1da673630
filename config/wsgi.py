import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
application = get_wsgi_application()

from config.allocator import apply_from_settings  # noqa: E402  (reads the settings)

apply_from_settings()  # before the first request: large buffers handed back when freed

# The process that serves is the one that owns the embedded vector store, so it runs the background
# work too (jobs, the sweeper, syncs). Started here, where every WSGI server builds the application
# (`manage.py runserver` as well as gunicorn), not in one server's config; a no-op with a broker.
from workers.embedded import start_background_work  # noqa: E402  (needs the application's setup)

start_background_work()
