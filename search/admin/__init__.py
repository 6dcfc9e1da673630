"""The search app's admin, one module per page (each registers its ModelAdmin when imported):

- model_versions.py: model versions and their life cycle (train a candidate, reindex and promote,
  roll back), with R@1, mAP@R, calibration and which model serves now; reindex jobs.
- jobs.py: jobs with live progress and their log (a JSON endpoint the job page polls).
- products.py: the catalog's product page extended with its look-alikes.
- image_text.py: the text read on each catalog image (OCR), its confidence and boxes.
- search_log.py: what shoppers searched and clicked, and the dashboard.
"""

from search.admin import image_text, jobs, model_versions, products, search_log  # noqa: F401
