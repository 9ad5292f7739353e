#!/usr/bin/env bash
# The full test suite, on a fresh machine too: installs and starts what the tests need, then
# runs every test. `.ci/run` calls this same script.
#
#   bash scripts/test.sh            # everything
#   GRIDWALK_FAULT_RUNS=2000 bash scripts/test.sh   # long mode of the randomized sync faults
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

# PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres: the server tests run against
# the real one (each test in a database it creates and drops).
ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "== installing PostgreSQL"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends postgresql postgresql-client
  fi
  local ver conf
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -q "gridwalk-tests" "$conf"; then
    # Loopback-only trust for the tests; prepended so it wins over the defaults.
    $SUDO sed -i '1i local all all trust # gridwalk-tests\nhost all all 127.0.0.1/32 trust # gridwalk-tests' "$conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
    || $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && return
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

# Debian's haproxy, for the replicas test that runs deploy/haproxy.cfg (the test skips, saying
# so, where it is missing).
ensure_haproxy() {
  if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
    return
  fi
  echo "== installing haproxy"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends haproxy
}

ensure_postgres
ensure_haproxy

echo "== domain, device store, demo county, county server and sync (SQLite and PostgreSQL)"
cargo test --features server,client

echo "== field app: view tests and browser flows"
bash scripts/test-app.sh

# Needs chromium and playwright-core, which scripts/test-app.sh installed; reuses the build above.
echo "== county dashboard in a real browser"
cargo test --features server,client --test integration dashboard_in_a_real_browser -- --ignored
