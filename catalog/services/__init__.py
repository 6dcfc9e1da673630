"""Every write to the catalog's tables. Views, admin, commands, tasks and the search app call these,
never ``save()`` or a queryset's ``update()`` on a catalog model (tests/test_table_ownership.py
checks every app).

products.py: create, update, delete products (fields cleaned here). images.py: add, delete and
re-index images, and replace one photo with another. duplicates.py: dismiss a "possible duplicate" flag.
index_state.py: the index state the search app decides and the catalog stores (an image indexed,
failed, due again; a product flagged a possible duplicate), batched for the indexing path; imported
as a module (``from catalog.services import index_state``).
activation.py: products leaving and rejoining the shop, and their retention. sync/: the catalog sync
(feeds, files, URLs, pushes), the one import path.
"""

from catalog.errors import CatalogError
from catalog.services.duplicates import duplicate_flag_dismiss
from catalog.services.images import (
    ImageAddResult,
    product_image_add,
    product_image_delete,
    product_image_replace,
    product_images_reindex,
)
from catalog.services.products import product_create, product_delete, product_update

__all__ = [
    "CatalogError",
    "ImageAddResult",
    "duplicate_flag_dismiss",
    "product_create",
    "product_delete",
    "product_image_add",
    "product_image_delete",
    "product_image_replace",
    "product_images_reindex",
    "product_update",
]
