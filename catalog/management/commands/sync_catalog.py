from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog import selectors
from catalog.models import CatalogSource, FeedChoice, SyncOrigin, SyncState
from catalog.services.sync import SyncOptions, sync_run_create, sync_run_execute
from catalog.services.sync.opening import is_url
from catalog.services.sync.runs import error_line, new_image_ids, run_summary

FORMATS = [FeedChoice.AUTO, FeedChoice.MERCHANT, FeedChoice.SHOPIFY, FeedChoice.JSONL]


class Command(BaseCommand):
    help = (
        "Sync the catalog from a feed: a Google Merchant Center feed (XML or TSV), a Shopify product CSV "
        "or a JSON Lines manifest, given as a file or an http(s) URL. Products match by sku, images by "
        "source URL or content hash; a second run of the same feed changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="A feed file, or an http(s):// URL.")
        parser.add_argument("--format", choices=FORMATS, default=FeedChoice.AUTO, help="Default: detect.")
        parser.add_argument(
            "--full",
            action="store_true",
            help="The feed is the whole catalog: products missing from it leave search (deactivated, "
            "deleted after CATALOG_SYNC_RETENTION_DAYS), and images a product no longer lists are removed.",
        )
        parser.add_argument("--no-images", action="store_true", help="Sync product data only.")
        parser.add_argument(
            "--store-url", default=None, help="Shopify: the shop's address, for product links."
        )
        parser.add_argument(
            "--currency",
            default=None,
            help="Currency of prices that name none (default CATALOG_SYNC_DEFAULT_CURRENCY).",
        )
        parser.add_argument(
            "--images-root",
            type=Path,
            default=None,
            help="JSONL manifests: the folder image paths are relative to (default: the manifest's own); "
            "paths may not leave it.",
        )
        parser.add_argument("--quiet-errors", action="store_true", help="Only print the summary.")

    def handle(self, *args, source: str, format: str, full: bool, no_images: bool, **options) -> None:
        location = source if is_url(source) else str(Path(source).resolve())
        if not is_url(source) and not Path(source).is_file():
            raise CommandError(f"Feed not found: {source}")
        catalog_source = CatalogSource.objects.filter(url=source).first() if is_url(source) else None
        run = sync_run_create(
            location=location,
            origin=SyncOrigin.COMMAND,
            requested_format=format,
            full=full,
            images=not no_images,
            source=catalog_source,
        )
        sync_options = SyncOptions(
            store_url=options.get("store_url")
            or (catalog_source.store_url if catalog_source else None)
            or None,
            default_currency=options.get("currency")
            or (catalog_source.default_currency if catalog_source else "")
            or settings.CATALOG_SYNC_DEFAULT_CURRENCY,
            images_root=options.get("images_root"),
        )
        with tqdm(unit="record", desc=f"sync #{run.pk}", disable=None) as bar:
            run = sync_run_execute(run, options=sync_options, progress=bar.update)
        if not options.get("quiet_errors"):
            for error in run.errors.all():
                self.stderr.write(error_line(error))
            if run.error_count > run.errors.count():
                self.stderr.write(
                    f"... and {run.error_count - run.errors.count()} more error(s) (counted, not kept)."
                )
        style = (
            self.style.SUCCESS if run.state == SyncState.DONE and not run.error_count else self.style.WARNING
        )
        self.stdout.write(style(run_summary(run)))
        if run.state == SyncState.FETCHING:
            self.stdout.write(
                f"{run.images_queued} image URL(s) went to the workers; follow sync #{run.pk} in the admin "
                f"or at /api/v1/catalog/sync/{run.pk}/."
            )
        elif run.images_fetched or run.images_added:
            counts = selectors.index_status_counts(image_ids=new_image_ids(run))
            self.stdout.write(
                f"New images: {counts['indexed']} indexed, {counts['pending']} pending, {counts['failed']} failed."
            )
        if run.state == SyncState.FAILED:
            raise CommandError(run.message)
