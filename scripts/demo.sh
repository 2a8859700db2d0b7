#!/usr/bin/env bash
# Builds ferry and starts the quickstart demo on http://127.0.0.1:8080 (Ctrl-C stops it).
# Extra arguments go to `ferry demo` (see `ferry demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --bin ferry
exec target/debug/ferry demo "$@"
