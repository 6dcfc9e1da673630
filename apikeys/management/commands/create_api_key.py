from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apikeys import services
from apikeys.errors import ApiKeyError
from apikeys.models import KeyKind, Scope


class Command(BaseCommand):
    help = (
        "Create an API key and print it (once; only a hash is stored). With --origin: a publishable key "
        "(pk_..., search only, for those web pages); without: a secret key (sk_...) with the given scopes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="Who uses the key, e.g. the shop's name.")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help=f"{', '.join(Scope.values)}; repeat or comma-separate for several.",
        )
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            help="A web origin whose pages may use the key (https://shop.example); repeat for several. "
            "Makes the key publishable.",
        )
        parser.add_argument("--rate", default="", help="Requests allowed, e.g. 600/min (default per kind).")

    def handle(self, *args, name: str, scope: list[str], origin: list[str], rate: str, **options) -> None:
        scopes = [s.strip() for value in scope for s in value.split(",") if s.strip()]
        kind = KeyKind.PUBLISHABLE if origin else KeyKind.SECRET
        try:
            issued = services.api_key_create(name=name, kind=kind, scopes=scopes, origins=origin, rate=rate)
        except ApiKeyError as exc:
            raise CommandError(exc.message) from exc
        key = issued.key
        where = f" for {', '.join(key.allowed_origins)}" if key.allowed_origins else ""
        self.stderr.write(
            f"Created {key.kind} key {key.name!r} ({', '.join(key.scopes)}{where}, rate "
            f"{key.rate or 'default'}). It is shown once, below; store it now."
        )
        self.stdout.write(issued.secret)
