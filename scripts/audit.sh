#!/usr/bin/env bash
# Dependency audit with cargo-deny (deny.toml): licenses, banned crates, sources, and RustSec
# advisories. Not part of CI: the advisory database comes from GitHub, which a CI machine may
# not reach, and an audit that passes because it could not look would be worse than none.
#
#   scripts/audit.sh             # everything; fails, saying so, if the database cannot be fetched
#   scripts/audit.sh --offline   # licenses, bans and sources only (no network needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! cargo deny --version >/dev/null 2>&1; then
  echo "audit: installing cargo-deny (a few minutes, once)" >&2
  cargo install cargo-deny --locked
fi
cargo deny --offline check licenses bans sources
if [ "${1:-}" = "--offline" ]; then
  echo "audit: advisories not checked (--offline)" >&2
  exit 0
fi
if ! cargo deny fetch db; then
  echo "audit: cannot fetch the RustSec advisory database; advisories NOT checked" >&2
  exit 2
fi
cargo deny check advisories
