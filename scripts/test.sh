#!/usr/bin/env bash
# The full test suite, on a fresh machine too: installs and starts what the tests need, then
# runs every test. `.ci/run` calls this same script.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== core: domain, device store, demo county (no features)"
cargo test --no-default-features
