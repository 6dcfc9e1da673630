from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers every kind of job (one module each); the registry itself never imports them.
        from search.jobs import kinds  # noqa: F401
