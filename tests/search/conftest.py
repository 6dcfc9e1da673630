"""Search suite fixtures; the model, store and broker fixtures live in tests/support/model_fixtures.py."""

from __future__ import annotations

import pytest

CANDIDATE_VERSION = 8


@pytest.fixture
def indexed_catalog(active_model, django_capture_on_commit_callbacks):
    """Three products with visibly different photos, indexed through the real on-commit task path."""
    from catalog import services
    from tests.fixtures.images import image_bytes

    specs = [
        ("RED-1", "Red mug", "kitchen", "5.00", True, (220, 20, 20), 1),
        ("GRN-1", "Green lamp", "lighting", "40.00", True, (20, 200, 40), 2),
        ("BLU-1", "Blue vase", "kitchen", "15.00", False, (20, 40, 220), 3),
    ]
    products, photos = {}, {}
    with django_capture_on_commit_callbacks(execute=True):
        for sku, title, category, price, stock, colour, pattern in specs:
            product = services.product_create(
                sku=sku, title=title, category=category, price=price, in_stock=stock
            )
            data = image_bytes(color=colour, size=(64, 64), pattern=pattern)
            services.product_image_add(product=product, data=data)
            products[sku], photos[sku] = product, data
    return products, photos


@pytest.fixture(scope="session")
def exported_candidate(tmp_path_factory):
    import keras

    from ml.export import export_saved_model
    from ml.model import build_embedding_model

    keras.utils.set_random_seed(11)
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=32, embedding_dim=24, head=True, pooling="gem"
    )
    return export_saved_model(
        model, tmp_path_factory.mktemp("candidate-models"), "lookalike", CANDIDATE_VERSION
    )


@pytest.fixture
def candidate(db, exported_candidate):
    from search.models import ModelKind
    from search.services.model_versions import model_version_register

    return model_version_register(
        version=CANDIDATE_VERSION,
        kind=ModelKind.TRAINED,
        backbone="mobilenet_v2_035",
        embedding_dim=exported_candidate.embedding_dim,
        image_size=exported_candidate.image_size,
        export_path=str(exported_candidate.path),
    )
