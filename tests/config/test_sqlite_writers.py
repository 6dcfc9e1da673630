"""The embedded SQLite under concurrent writers: a transaction that reads and then writes while another
thread holds the write lock waits its turn instead of failing with "database is locked" (which the
API answers 503), and plain reads go on during a write. Run in a child process on the embedded
default's own settings (no DATABASE_URL), since the tests' database is PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, threading, time
    import django
    django.setup()
    from django.db import connection, transaction

    with connection.cursor() as c:
        c.execute("CREATE TABLE t (n INTEGER)")
        c.execute("INSERT INTO t VALUES (0)")
    connection.close()
    holding = threading.Event()
    outcome = {}

    def writer():
        with transaction.atomic():
            with connection.cursor() as c:
                c.execute("UPDATE t SET n = n + 1")
                holding.set()
                time.sleep(1.0)
        connection.close()

    def read_then_write():
        holding.wait()
        try:
            with transaction.atomic():
                with connection.cursor() as c:
                    c.execute("SELECT n FROM t")
                    c.execute("UPDATE t SET n = n + 10")
            outcome["second"] = "ok"
        except Exception as exc:
            outcome["second"] = f"{type(exc).__name__}: {exc}"
        connection.close()

    def reader():
        holding.wait()
        started = time.monotonic()
        with connection.cursor() as c:
            c.execute("SELECT n FROM t")
        outcome["read_s"] = time.monotonic() - started
        connection.close()

    threads = [threading.Thread(target=f) for f in (writer, read_then_write, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with connection.cursor() as c:
        c.execute("SELECT n FROM t")
        outcome["n"] = c.fetchone()[0]
    print(json.dumps(outcome))
    """
)


def test_embedded_sqlite_writers_wait_their_turn_and_reads_do_not_wait(tmp_path: Path) -> None:
    done = _embedded(tmp_path, SCRIPT)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["second"] == "ok"  # before: "OperationalError: database is locked"
    assert outcome["n"] == 11  # both writes landed
    assert outcome["read_s"] < 0.5  # a read does not wait for the writer's second to pass


PRAGMAS = textwrap.dedent(
    """
    import django
    django.setup()
    from django.db import connection
    with connection.cursor() as c:
        print(c.execute("PRAGMA journal_mode").fetchone()[0], c.execute("PRAGMA synchronous").fetchone()[0])
    """
)


def _embedded(tmp_path: Path, script: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings.base", **extra)
    repo = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=repo, capture_output=True, text=True, timeout=120
    )


def test_embedded_sqlite_syncs_its_log_at_checkpoints_unless_told_to_sync_every_commit(
    tmp_path: Path,
) -> None:
    # SQLite numbers its modes: 1 NORMAL (the default here), 2 FULL.
    assert _embedded(tmp_path, PRAGMAS).stdout.split() == ["wal", "1"]
    assert _embedded(tmp_path, PRAGMAS, SQLITE_SYNCHRONOUS="full").stdout.split() == ["wal", "2"]
    refused = _embedded(tmp_path, PRAGMAS, SQLITE_SYNCHRONOUS="OFF")
    assert refused.returncode != 0 and "SQLITE_SYNCHRONOUS must be NORMAL or FULL" in refused.stderr
