#!/usr/bin/env bash
# Install, load the Grocery Store demo catalog, make it searchable, and serve the site on the
# embedded defaults (SQLite, Qdrant Edge and the model in-process, tasks run in-process).
#   GROCERY_DATA=path/to/grocery-store bash scripts/demo.sh
# With no GROCERY_DATA the dataset is cloned from its public repository (needs internet).
# BACKBONE_WEIGHTS=path/to/weights.h5 uses local backbone weights instead of downloading ImageNet's.
source "$(dirname "$0")/_env.sh"
step "install" install_project
export TF_CPP_MIN_LOG_LEVEL=2
M=".venv/bin/python manage.py"

data="${GROCERY_DATA:-}"
if [ -z "$data" ]; then
  data="var/data/GroceryStoreDataset"
  if [ ! -d "$data" ]; then
    mkdir -p var/data
    step "download dataset" git clone --depth 1 https://github.com/marcusklasson/GroceryStoreDataset.git "$data"
  fi
fi

step "migrate" $M migrate --noinput
step "static files" $M collectstatic --noinput -v 0
step "bootstrap model" $M bootstrap_model
step "manifest" $M make_grocery_manifest "$data" --out var/grocery-manifest.jsonl
step "import" $M import_catalog var/grocery-manifest.jsonl
step "index leftovers" $M index_pending
$M ensure_admin
echo "Serving on http://${BIND:-127.0.0.1:8000}/  (search page), /admin/ (catalog), /api/v1/docs/ (API)"
exec .venv/bin/gunicorn config.wsgi:application -c platform/gunicorn.embedded.conf.py
