"""The lengths of a product's text fields, defined once: the model's columns, the API's validation, the
service's checks and the feed parsers' cuts all read them here. Plain constants, no Django, so the feed
parsers (which import no Django) share them too. Changing one needs a migration for the column."""

from __future__ import annotations

SKU_MAX = 64
TITLE_MAX = 300
CATEGORY_MAX = 120
BRAND_MAX = 120
CURRENCY_LEN = 3  # an ISO 4217 code
# A product page's or an image's web address. Longer URLs exist, but browsers and shops keep to this.
URL_MAX = 2000
