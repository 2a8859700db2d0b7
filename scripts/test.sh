#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, all tests, and a smoke run of the benchmark
# harness.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
bench/wrk-baseline --smoke
