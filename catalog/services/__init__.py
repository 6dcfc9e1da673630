"""Every write to the catalog. Views, admin, commands and tasks call these, never ``save()`` directly.

products.py: create, update, delete products (fields cleaned here). images.py: add, delete and
re-index images. activation.py: products leaving and rejoining the shop, and their retention.
sync/: the catalog sync (feeds, files, URLs, pushes), the one import path.
"""

from catalog.errors import CatalogError
from catalog.services.images import (
    ImageAddResult,
    product_image_add,
    product_image_delete,
    product_images_reindex,
)
from catalog.services.products import product_create, product_delete, product_update

__all__ = [
    "CatalogError",
    "ImageAddResult",
    "product_create",
    "product_delete",
    "product_image_add",
    "product_image_delete",
    "product_images_reindex",
    "product_update",
]
