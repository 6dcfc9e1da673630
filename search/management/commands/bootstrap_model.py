from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ml.backbones import WeightsError


class Command(BaseCommand):
    help = (
        "Make the catalog searchable before any training: export the pretrained backbone (pooled, "
        "L2-normalised features) as model version 1 and activate it. A no-op when a model is active. "
        "--compact instead makes the pretrained model with compact vectors fitted on the catalog's photos "
        "and moves the index to it (reindex, gate, promote)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--weights",
            default=None,
            help="A local backbone weights file, or 'imagenet' to download (default: BACKBONE_WEIGHTS).",
        )
        parser.add_argument("--image-size", type=int, default=None)
        parser.add_argument(
            "--compact",
            action="store_true",
            help="Fit BOOTSTRAP_COMPACT_DIM-d vectors on the catalog, then reindex and promote through the gate.",
        )

    def handle(self, *args, weights: str | None, image_size: int | None, compact: bool, **options) -> None:
        if compact:
            if image_size is not None:
                raise CommandError(
                    "--compact makes the model at BOOTSTRAP_IMAGE_SIZE; leave out --image-size."
                )
            return self._compact(weights)
        from search.services.model_versions import bootstrap_model_ensure
        from search.vector_store import VectorStoreError

        try:
            result = bootstrap_model_ensure(weights=weights, image_size=image_size)
        except (WeightsError, VectorStoreError) as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:  # e.g. no internet for weights="imagenet"
            if "URL fetch failure" in str(exc) or "urlopen" in str(exc):
                raise CommandError(
                    "Could not download ImageNet weights (offline?). Pass --weights PATH to a local "
                    "weights file or set BACKBONE_WEIGHTS."
                ) from exc
            raise
        model = result.model
        verb = "Bootstrapped" if result.created else "Already active:"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} model v{model.version} ({model.kind}, {model.backbone}, {model.embedding_dim}-d, "
                f"{model.image_size} px) -> collection {model.collection}"
            )
        )

    def _compact(self, weights: str | None) -> None:
        # Two jobs, as the import's follow-up makes them: the candidate, then the ordinary reindex.
        from search.management.job_console import run_job_command

        made = run_job_command(
            self, kind="compact_pretrained", params={"then_promote": False, "weights": weights}
        )
        if made.result.get("model_version"):
            run_job_command(self, kind="reindex", params={"model": made.result["model_version"]})
