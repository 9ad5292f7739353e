#!/usr/bin/env bash
# Field app tests: installs what they need (webkit2gtk and friends for the desktop build,
# Debian chromium, Node.js and npm, playwright-core from npm; no browser download), then runs
#   1. clippy on the app features (desktop, desktop+server, and the phone build's `mobile`
#      checked for this machine),
#   2. the view tests (dioxus-ssr) and the browser flows (Playwright + headless Chromium
#      against the liveview harness on 127.0.0.1:0).
# Idempotent; CI=true runs it with no stdin. The lead's scripts/test.sh calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

need_apt=()
for pkg in libwebkit2gtk-4.1-dev libgtk-3-dev libxdo-dev libsoup-3.0-dev chromium fonts-noto-cjk xvfb xdotool imagemagick; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Node.js runs the Playwright flows; a node already on PATH (nvm, a tarball) is used as is.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
command -v node >/dev/null || { echo "node is still missing after installing nodejs" >&2; exit 1; }
# playwright-core declares Node >= 20; Debian 12's own nodejs is 18. Say so rather than fail
# later with an obscure error.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "warning: node $(node --version) is older than the 20 playwright-core asks for; if the" \
       "browser flows fail to start, install Node.js 20 (Debian 13's nodejs, or NodeSource)" >&2
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund
fi

cargo clippy --all-targets --features desktop -- -D warnings
cargo clippy --all-targets --features desktop,server -- -D warnings
# The phone build (Dioxus's mobile launcher, the robius-location provider, the phone's data
# directory) for this machine's target: a check with lints, not a second build. Its
# Android- and iOS-only lines need the NDK or Xcode and are not compiled here.
cargo clippy --all-targets --no-default-features --features mobile -- -D warnings
# View tests, encryption and the store key (`vault`), the browser flows and the sync flow
# against a real in-process gridwalk-server (ignored by default: they need chromium; the
# ignored `pin_cost` measurement is a library test, not run here). `server` is on only in this
# test build, never in the app.
cargo test --features desktop,server --test integration -- --include-ignored app_ vault::
# The key file's own unit tests (the waits' schedule, sealing): the library with only `vault`.
cargo test --no-default-features --features vault --lib -- vault:: keystore::
