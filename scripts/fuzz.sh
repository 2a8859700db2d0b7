#!/usr/bin/env bash
# Fuzzes ferry's input handling for a bounded time: each target runs SECONDS (default 60)
# and grows its corpus under fuzz/corpus/<target> (kept in the repository). Not part of CI.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   targets: manifests tls_secret routes
# A crash stops the run and leaves the input under fuzz/artifacts/<target>/; reproduce it
# with `cargo +nightly fuzz run <target> <file>`, fix, and add the file to the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (once)" >&2
  cargo install cargo-fuzz --locked
fi
seconds="${1:-60}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(manifests tls_secret routes)
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s" >&2
  cargo +nightly fuzz run -O --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1
done
