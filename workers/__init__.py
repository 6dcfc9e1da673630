"""Celery tasks: thin adapters that take ids, re-fetch, and call services."""
