#!/usr/bin/env bash
# Screenshots of the county dashboard for the README: starts the demo county server on a
# loopback port, then runs the dashboard's browser flow (tests/browser/dashboard_flow.mjs)
# with SHOT_DIR=docs/screenshots on the newest reported hazard. Needs chromium and
# tests/browser/node_modules (scripts/test-app.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --features server --bin gridwalk-server
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
target/debug/gridwalk-server --db "$tmp/server.db" serve --demo --listen 127.0.0.1:0 \
  --addr-file "$tmp/addr" > "$tmp/log" 2>&1 &
echo $! > "$tmp/pid"
for _ in $(seq 1 120); do [ -s "$tmp/addr" ] && break; sleep 1; done
base="http://$(cat "$tmp/addr")"
token=$(curl -sf -H 'content-type: application/json' \
  -d '{"username":"admin","password":"gridwalk-demo","device_id":"00000000-0000-7000-8000-000000000001"}' \
  "$base/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
text=$(curl -sf -H "authorization: Bearer $token" "$base/api/v1/records?kind=HAZARD&status=REPORTED" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["description"])')
SHOT_DIR="$PWD/docs/screenshots" node tests/browser/dashboard_flow.mjs "$base" "$text"
ls -1 docs/screenshots/dash-*.png
