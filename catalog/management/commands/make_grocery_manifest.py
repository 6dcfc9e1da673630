from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.grocery_manifest import write_manifest
from ml.grocery import GroceryLayoutError, dataset_dir


class Command(BaseCommand):
    help = (
        "Write an import_catalog manifest from a Grocery Store Dataset checkout (one product per fine class)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="The dataset checkout (the folder containing dataset/).")
        parser.add_argument("--out", type=Path, default=Path("var/grocery-manifest.jsonl"))
        parser.add_argument(
            "--split",
            default="train",
            choices=["train", "val", "test", "none"],
            help="Which split's photos to add after each product's catalog image.",
        )
        parser.add_argument("--photos-per-product", type=int, default=None)

    def handle(
        self, *args, path: Path, out: Path, split: str, photos_per_product: int | None, **options
    ) -> None:
        try:
            count = write_manifest(
                path,
                out,
                photo_split=None if split == "none" else split,
                photos_per_product=photos_per_product,
            )
        except (GroceryLayoutError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {count} products to {out}"))
        self.stdout.write(f"Import with: manage.py import_catalog {out} --images-root {dataset_dir(path)}")
