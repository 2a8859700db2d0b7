#!/usr/bin/env bash
# Installs what building, testing and benchmarking ferry need; safe to run again (it only
# installs what is missing). Sourced by demo.sh, test.sh and bench/run.
set -euo pipefail

# Debian packages: cmake builds pingora's zlib-ng; curl for the demo's examples; wrk for the
# benchmarks; openssl (the CLI) for TLS tests; pkg-config and a C compiler for -sys crates.
packages=(cmake curl openssl wrk pkg-config gcc make)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
