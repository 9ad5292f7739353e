#!/usr/bin/env bash
# Screenshots of the field app's main screens from the real desktop window (webkit2gtk) under
# Xvfb, driven with xdotool, saved to docs/screenshots/. Uses a throwaway demo store.
# Needs: libwebkit2gtk-4.1-dev libgtk-3-dev libxdo-dev libsoup-3.0-dev xvfb xdotool imagemagick
#        fonts-noto-cjk (scripts/test-app.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="${OUT:-docs/screenshots}"
mkdir -p "$OUT"
cargo build --features desktop --bin gridwalk
BIN="$CARGO_TARGET_DIR/debug/gridwalk"

TMP="$(mktemp -d)"
DISP="${SCREENSHOT_DISPLAY:-:99}"
W=400; H=820
Xvfb "$DISP" -screen 0 ${W}x${H}x24 -nolisten tcp >"$TMP/xvfb.log" 2>&1 &
XVFB=$!
APP=""
cleanup() { [ -n "$APP" ] && kill "$APP" 2>/dev/null || true; kill "$XVFB" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
export DISPLAY="$DISP"
sleep 1

WEBKIT_DISABLE_DMABUF_RENDERER=1 WEBKIT_DISABLE_COMPOSITING_MODE=1 \
  "$BIN" app --demo --db "$TMP/device.db" --pin 123456 --walk-m 6 --fix-interval-ms 400 >"$TMP/app.log" 2>&1 &
APP=$!

# Wait for the window.
for _ in $(seq 1 120); do
  WID="$(xdotool search --name 'gridwalk' 2>/dev/null | head -1 || true)"
  [ -n "$WID" ] && break
  sleep 0.5
done
[ -n "${WID:-}" ] || { echo "no window; app log:"; cat "$TMP/app.log"; exit 1; }
xdotool windowmove "$WID" 0 0 windowsize "$WID" $W $H || true
sleep 3

shot() { sleep "${2:-1.5}"; import -window root "$OUT/$1.png"; echo "saved $OUT/$1.png"; }
click() { xdotool mousemove "$1" "$2" click 1; }
# Bottom tab bar: 7 tabs across the window.
tab() { local i=$1; click $(( (W / 7) * i + W / 14 )) $(( H - 30 )); }

shot 01-unlock 4
xdotool key Tab; sleep 0.5; xdotool type --delay 80 123456; sleep 0.5; xdotool key Return
shot 02-today 3
tab 1; shot 03-households
click 200 300; shot 04-household-detail   # the first household card
tab 2; shot 05-report-hazard
tab 3; shot 06-patrol
# Start a patrol: the big button sits under the hint text.
click 200 190; shot 07-patrol-running 4
tab 4; shot 08-map
tab 5; shot 09-records
tab 6; shot 10-sync
