#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints (the kernel programs for their own target too),
# dependency licenses and sources (cargo-deny, offline),
# all tests (the L4 ones need root and a kernel with BPF), and smoke runs of the benchmark
# harnesses.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo +nightly clippy -p ferry-ebpf-programs --bin ferry-ebpf --target bpfel-unknown-none \
  -Z build-std=core --release -- -D warnings
cargo test --workspace
bench/wrk-baseline --smoke
bench/compare --smoke
bench/l4 --smoke
bench/profile --smoke
scripts/audit.sh --offline
