#!/usr/bin/env bash
# Screenshots of the field app from the real desktop window (webkit2gtk) under Xvfb, driven
# with xdotool, saved to docs/screenshots/.
#
#   bash scripts/screenshots.sh            # the main screens, on a throwaway demo store (01-10)
#   bash scripts/screenshots.sh --server   # a day against the demo county server (11-18):
#       enrolled as worker-a (as scripts/run.sh does), record a visit, log a hazard with a
#       photo (leaving the form and coming back), sync; the county (the `secretary` account,
#       through the server's API) confirms the hazard and replies; sync again; the Sync
#       summary, the Records list and the record with the county's reply; then two other
#       devices push concurrent edits of one household's address and the app's next sync
#       shows the conflict with both values.
#
# Needs: libwebkit2gtk-4.1-dev libgtk-3-dev libxdo-dev libsoup-3.0-dev xvfb xdotool imagemagick
#        fonts-noto-cjk (scripts/test-app.sh installs them), and curl and jq for --server.
# Clicks are at fixed points of the 400×820 window, found on the screenshots themselves: after
# a layout change, look at every shot again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
MODE=demo
case "${1:-}" in
  "") ;;
  --server) MODE=server ;;
  *) echo "usage: $0 [--server]" >&2; exit 2 ;;
esac
OUT="${OUT:-docs/screenshots}"
mkdir -p "$OUT"
if [ "$MODE" = server ]; then
  # One build of the library for both binaries (the app's code is the same with `server` on;
  # it saves a second compile of everything on a small machine).
  cargo build --features desktop,server --bin gridwalk --bin gridwalk-server
else
  cargo build --features desktop --bin gridwalk
fi
BIN="$CARGO_TARGET_DIR/debug/gridwalk"

TMP="$(mktemp -d)"
DISP="${SCREENSHOT_DISPLAY:-:99}"
W=400; H=820
Xvfb "$DISP" -screen 0 ${W}x${H}x24 -nolisten tcp >"$TMP/xvfb.log" 2>&1 &
XVFB=$!
APP=""; SERVER=""
cleanup() {
  [ -n "$APP" ] && kill "$APP" 2>/dev/null || true
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  kill "$XVFB" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
export DISPLAY="$DISP"
sleep 1

shot() { sleep "${2:-1.5}"; import -window root "$OUT/$1.png"; echo "saved $OUT/$1.png"; }
click() { xdotool mousemove "$1" "$2" click 1; }
# Bottom tab bar: 7 tabs across the window.
tab() { local i=$1; click $(( (W / 7) * i + W / 14 )) $(( H - 30 )); }
# Types text (Chinese too) into the focused field.
typein() { xdotool type --delay 200 "$1"; sleep 0.5; }

start_app() {
  WEBKIT_DISABLE_DMABUF_RENDERER=1 WEBKIT_DISABLE_COMPOSITING_MODE=1 \
    "$BIN" app "$@" >"$TMP/app.log" 2>&1 &
  APP=$!
  for _ in $(seq 1 120); do
    WID="$(xdotool search --name 'gridwalk' 2>/dev/null | head -1 || true)"
    [ -n "$WID" ] && break
    kill -0 "$APP" 2>/dev/null || { echo "the app stopped; its log:"; cat "$TMP/app.log"; exit 1; }
    sleep 0.5
  done
  [ -n "${WID:-}" ] || { echo "no window; app log:"; cat "$TMP/app.log"; exit 1; }
  xdotool windowmove "$WID" 0 0 windowsize "$WID" $W $H || true
  sleep 3
}

unlock() {
  click 200 156; sleep 0.5; xdotool type --delay 80 123456; sleep 0.5; xdotool key Return
}

demo_run() {
  start_app --demo --db "$TMP/device.db" --pin 123456 --walk-m 6 --fix-interval-ms 400
  shot 01-unlock 4
  unlock
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
}

# The county's side, through the server's API as the `secretary` (网格长) account.
API=()
county_login() {
  local body
  body=$(jq -n --arg d "$(cat /proc/sys/kernel/random/uuid)" \
    '{username: "secretary", password: "gridwalk-demo", device_id: $d}')
  TOKEN=$(curl -sfS -H 'x-gridwalk-protocol: 1' -H 'content-type: application/json' \
    -d "$body" "$URL/api/v1/auth/login" | jq -r .token)
  API=(-sfS -H 'x-gridwalk-protocol: 1' -H 'content-type: application/json'
       -H "authorization: Bearer $TOKEN")
}

server_run() {
  local desc="三组路口电线杆倾斜，电线下垂" place="三组路口" reply="已受理，已通知供电所明天上午处理，请在现场拉警戒线"
  "$CARGO_TARGET_DIR/debug/gridwalk-server" --db "$TMP/server.db" serve --demo \
    --listen 127.0.0.1:0 --addr-file "$TMP/server.addr" >"$TMP/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 120); do
    [ -s "$TMP/server.addr" ] && break
    kill -0 "$SERVER" 2>/dev/null || { echo "the server stopped:"; cat "$TMP/server.log"; exit 1; }
    sleep 0.5
  done
  URL="http://$(cat "$TMP/server.addr")"
  echo "county server: $URL"
  # A photo of the hazard, as a file the form's path field takes.
  convert -size 640x480 -seed 7 plasma:tan-slategray -pointsize 36 -fill white \
    -font DejaVu-Sans -annotate +30+440 'pole 3-zu' "$TMP/pole.jpg"

  # Enrolled as worker-a before the window opens, as scripts/run.sh does.
  start_app --db "$TMP/device.db" --pin 123456 --server "$URL" --user worker-a \
    --password gridwalk-demo
  sleep 3; unlock; sleep 3

  # A visit: the first household (its form at the bottom of the page), notes, save.
  tab 1; sleep 1.5
  click 200 300; sleep 1.5
  xdotool key End; sleep 1
  click 200 282; sleep 0.5; typein "老人在家，身体尚好，已提醒冬季用电安全"; sleep 0.5
  click 200 455; shot 11-visit-saved 2

  # A hazard: category 用电 (second of the list; the form starts on 其他, the last), severity
  # 较大, description, place, a photo by its path; then away to Today and back: the draft
  # keeps the text and the photo.
  tab 2; sleep 2
  click 200 222; sleep 1; xdotool key --delay 80 Up Up Up Up Up Up Up Up Up Up Up Up Return; sleep 0.5
  click 200 310; sleep 1; xdotool key --delay 80 Down Return; sleep 0.5
  click 200 430; sleep 0.3; typein "$desc"
  click 200 552; sleep 0.3; typein "$place"
  click 165 704; sleep 0.3; typein "$TMP/pole.jpg"; click 346 704; sleep 1
  tab 0; sleep 1.5; tab 2
  shot 12-hazard-draft-kept 2
  # Submit (the button sits at the same place once the page is scrolled to its end): the
  # record opens.
  click 200 75; xdotool key End; sleep 1
  click 200 645; shot 13-hazard-recorded 2

  # Sync: the visit, the hazard and its photo go up.
  tab 6; sleep 1.5
  click 200 244; shot 14-sync-sent 5

  # The county: the secretary confirms the hazard, with a note, and replies.
  county_login
  local id
  id=$(curl "${API[@]}" "$URL/api/v1/records?kind=HAZARD&limit=200" \
    | jq -r --arg d "$desc" '[.[] | select(.description == $d)][0].id // empty')
  [ -n "$id" ] || { echo "the hazard did not reach the county server" >&2; exit 1; }
  curl "${API[@]}" -d '{"to": "CONFIRMED", "note": "网格长已受理"}' \
    "$URL/api/v1/records/$id/transition" >/dev/null
  curl "${API[@]}" -d "$(jq -n --arg t "$reply" '{text: $t}')" \
    "$URL/api/v1/records/$id/replies" >/dev/null
  echo "county: hazard $id confirmed, reply sent"

  # Sync again: the county's answer comes down.
  click 200 244; shot 15-sync-feedback 5
  tab 5; shot 16-records 2
  click 200 213; shot 17-record-county-reply 2

  # Two devices changed one household's address while offline (worker-a's second device, then
  # the secretary at the village office), each pushed through the sync API: the later edit
  # stands, the other is a conflict. The app's next sync shows it with both values.
  conflict_on_an_address
  tab 6; sleep 1.5; click 200 244; sleep 5; click 200 85; xdotool key End
  shot 18-sync-conflict 1
}

login_as() { # user device-id -> token
  curl -sfS -H 'x-gridwalk-protocol: 1' -H 'content-type: application/json' \
    -d "$(jq -n --arg u "$1" --arg d "$2" '{username: $u, password: "gridwalk-demo", device_id: $d}')" \
    "$URL/api/v1/auth/login" | jq -r .token
}

push_address() { # token device-id household-id base-version address edited-at
  local body
  body=$(jq -n --arg d "$2" --arg h "$3" --argjson v "$4" --arg a "$5" --arg t "$6" \
    --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '{device_id: $d, lane: "NORMAL", device_now: $now, entries: [{lane: "NORMAL", seq: 1,
      kind: "HOUSEHOLD", record_id: $h, op: "UPDATE", fields: {address: $a},
      base_version: $v, edited_at: $t}]}')
  curl -sfS -H 'x-gridwalk-protocol: 1' -H 'content-type: application/json' \
    -H "authorization: Bearer $1" -d "$body" "$URL/api/v1/sync/push" >/dev/null
}

conflict_on_an_address() {
  local dev_a dev_s tok_a tok_s hh
  dev_a=$(cat /proc/sys/kernel/random/uuid); dev_s=$(cat /proc/sys/kernel/random/uuid)
  tok_a=$(login_as worker-a "$dev_a"); tok_s=$(login_as secretary "$dev_s")
  hh=$(curl -sfS --compressed -H 'x-gridwalk-protocol: 1' -H "authorization: Bearer $tok_a" \
    "$URL/api/v1/sync/pull?cursor=0&limit=10000" \
    | jq -c '[.changes[] | select(.kind == "HOUSEHOLD")][0] | {id, seq, address: .data.address}')
  local id seq addr
  id=$(jq -r .id <<<"$hh"); seq=$(jq -r .seq <<<"$hh"); addr=$(jq -r .address <<<"$hh")
  push_address "$tok_a" "$dev_a" "$id" "$seq" "${addr}（东侧新房）" "$(date -u -d '-20 min' +%Y-%m-%dT%H:%M:%SZ)"
  push_address "$tok_s" "$dev_s" "$id" "$seq" "${addr}（老宅）" "$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%SZ)"
  echo "conflict: household $id address edited by worker-a's second device and the secretary"
}

if [ "$MODE" = server ]; then server_run; else demo_run; fi
