# Shared set-up for scripts/: a virtualenv in .venv with the project installed, byte-compiled.
# Sourced, not run. Idempotent: a second run only checks what is there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-}"

step() { # step NAME COMMAND...: run a command and print how long it took
  local name="$1"; shift
  local t0=$SECONDS
  echo "==> $name"
  "$@"
  echo "<== $name: $((SECONDS - t0)) s"
}

install_project() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${EXTRAS:+-$EXTRAS}"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
    # These machines set PYTHONDONTWRITEBYTECODE=1; without compiled bytecode `import tensorflow`
    # takes 9-14 s instead of about 4 s, in every process.
    .venv/bin/python -m compileall -q -j 0 .venv/lib > /dev/null 2>&1 || true
    touch "$stamp"
  fi
}

ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "PostgreSQL is down; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1; then
    echo "Redis is down; starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping > /dev/null 2>&1 && break; sleep 1; done
  fi
}
