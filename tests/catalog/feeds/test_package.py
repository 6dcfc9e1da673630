"""catalog.feeds is plain Python: the sync service, a worker or a script can parse without Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_importing_and_parsing_loads_no_django():
    code = (
        "import io, sys\n"
        "from catalog.feeds import parse_feed\n"
        'records = list(parse_feed(io.BytesIO(b\'{"sku": "A", "title": "B"}\\n\'), \'jsonl\'))\n'
        "assert records[0].sku == 'A', records\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'celery')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
