#!/usr/bin/env bash
# Install everything the tests need and run them against the machine's PostgreSQL and Redis.
#   bash scripts/test.sh            # the whole suite (slow real-data tests included)
#   bash scripts/test.sh -m "not slow" tests/catalog   # extra arguments go to pytest
EXTRAS=test
source "$(dirname "$0")/_env.sh"
source "$(dirname "$0")/_browser.sh"
step "install" install_project
step "services" ensure_services
step "browser" ensure_browser
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lookalike}"
export CELERY_TEST_BROKER_URL="${CELERY_TEST_BROKER_URL:-redis://127.0.0.1:6379/15}"
export TF_CPP_MIN_LOG_LEVEL=2
step "ruff" .venv/bin/ruff check .
step "ruff format" .venv/bin/ruff format --check .
step "import layers" .venv/bin/lint-imports --no-cache
step "types" .venv/bin/mypy
step "pytest" .venv/bin/python -m pytest -p no:cacheprovider "$@"
