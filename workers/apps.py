from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers"

    def ready(self) -> None:
        from workers import metrics, placement, subscribers

        placement.connect()  # the embedded-or-Celery choice, made once for search's jobs
        subscribers.connect()
        metrics.connect()
