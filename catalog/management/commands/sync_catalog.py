from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog import selectors
from catalog.models import CatalogSource, FeedChoice, SyncOrigin, SyncRun, SyncState
from catalog.services.sync import SyncOptions, sync_run_create, sync_run_execute
from catalog.services.sync.opening import is_url

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
        )
        with tqdm(unit="record", desc=f"sync #{run.pk}", disable=None) as bar:
            run = sync_run_execute(run, options=sync_options, progress=bar.update)
        if not options.get("quiet_errors"):
            for error in run.errors.all():
                self.stderr.write(_error_line(error))
            if run.error_count > run.errors.count():
                self.stderr.write(
                    f"... and {run.error_count - run.errors.count()} more error(s) (counted, not kept)."
                )
        style = (
            self.style.SUCCESS if run.state == SyncState.DONE and not run.error_count else self.style.WARNING
        )
        self.stdout.write(style(summary(run)))
        if run.state == SyncState.FETCHING:
            self.stdout.write(
                f"{run.images_queued} image URL(s) went to the workers; follow sync #{run.pk} in the admin "
                f"or at /api/v1/catalog/sync/{run.pk}/."
            )
        elif run.images_fetched or run.images_added:
            counts = selectors.index_status_counts(image_ids=_new_image_ids(run))
            self.stdout.write(
                f"New images: {counts['indexed']} indexed, {counts['pending']} pending, {counts['failed']} failed."
            )
        if run.state == SyncState.FAILED:
            raise CommandError(run.message)


def _error_line(error) -> str:
    where = f"{error.unit} {error.position}" if error.position is not None else (error.url or "feed")
    who = f" (sku {error.sku})" if error.sku else ""
    url = f" [{error.url}]" if error.url and error.position is not None else ""
    return f"{where}{who}: {error.code}: {error.message}{url}"


def summary(run: SyncRun) -> str:
    if run.feed_not_modified:
        return f"sync #{run.pk} {run.state}: the feed has not changed since the last sync (HTTP 304)."
    return (
        f"sync #{run.pk} {run.state} in {run.duration_s or 0:.1f} s: {run.records} product(s) read; "
        f"{run.products_created} created, {run.products_updated} updated, {run.products_unchanged} unchanged, "
        f"{run.products_reactivated} reactivated, {run.products_removed} removed; images {run.images_fetched} "
        f"fetched, {run.images_added} added from files, {run.images_unchanged} unchanged, "
        f"{run.images_failed} failed, {run.images_removed} removed; {run.error_count} error(s)."
    )


def _new_image_ids(run: SyncRun) -> list[str]:
    from catalog.models import ProductImage

    since = run.started_at
    return [str(pk) for pk in ProductImage.objects.filter(created_at__gte=since).values_list("pk", flat=True)]
