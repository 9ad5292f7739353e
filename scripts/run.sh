#!/usr/bin/env bash
# Runs gridwalk on its embedded defaults (SQLite, demo data). See README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --bin gridwalk -- day "$@"
