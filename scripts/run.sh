#!/usr/bin/env bash
# Runs gridwalk on its embedded defaults: the county server on SQLite with the demo county,
# and the field app enrolled against it as worker-a, in a phone-sized window when there is a
# display, otherwise served to a browser on a printed 127.0.0.1 URL. Ctrl-C stops both.
#
#   bash scripts/run.sh            # app PIN 123456; data in ./gridwalk-data/
#   bash scripts/run.sh --en       # extra options go to `gridwalk app`
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
for pkg in libwebkit2gtk-4.1-dev libgtk-3-dev libxdo-dev libsoup-3.0-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing the desktop build's libraries: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi

echo "building the county server and the field app (the first build takes several minutes; cargo shows its progress)"
cargo build --features server --bin gridwalk-server
cargo build --features desktop --bin gridwalk
target=${CARGO_TARGET_DIR:-target}

data=${GRIDWALK_DATA:-gridwalk-data}
mkdir -p "$data"
rm -f "$data/server.addr"
# The same address every run (the app keeps it), unless the port is taken; a new address is
# passed to the app below, which saves it in its existing store (as Settings would).
listen=127.0.0.1:${GRIDWALK_PORT:-8080}
if (echo > "/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then
  echo "port ${listen##*:} is taken; the county server takes any free port"
  listen=127.0.0.1:0
fi
"$target/debug/gridwalk-server" --db "$data/server.db" serve --demo --listen "$listen" \
  --addr-file "$data/server.addr" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 120); do
  [ -s "$data/server.addr" ] && break
  kill -0 "$server" 2>/dev/null || { echo "the server stopped; see its log above" >&2; exit 1; }
  sleep 0.5
done
addr=$(cat "$data/server.addr")
echo "county server and dashboard: http://$addr/ (accounts worker-a, worker-b, secretary, admin; password gridwalk-demo)"

"$target/debug/gridwalk" app --db "$data/device.db" --pin 123456 --walk-m 6 \
  --server "http://$addr" --user worker-a --password gridwalk-demo "$@"
