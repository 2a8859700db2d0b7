#!/usr/bin/env bash
# Installs what building, testing and benchmarking ferry need; safe to run again (it only
# installs what is missing). Sourced by demo.sh, test.sh and bench/run.
set -euo pipefail

# Debian packages: cmake builds pingora's zlib-ng; curl for the demo's examples; wrk for the
# benchmarks; openssl (the CLI) for TLS tests; iproute2 and procps (ip, sysctl) for the L4
# tests' network namespaces, util-linux (setpriv) to run ferry there with only its
# capabilities; pkg-config and a C compiler for -sys crates.
packages=(cmake curl openssl wrk iproute2 procps util-linux pkg-config gcc make)
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

# The eBPF programs build with nightly's core library from source and bpf-linker 0.10.0 (its
# default feature uses nightly's own LLVM; newer releases need a system LLVM Debian lacks).
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "setup: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
  echo "setup: adding rust-src to nightly" >&2
  rustup component add rust-src --toolchain nightly
fi
if ! bpf-linker --version 2>/dev/null | grep -q '^bpf-linker 0\.10\.0$'; then
  echo "setup: installing bpf-linker 0.10.0 (a few minutes, once)" >&2
  cargo install bpf-linker@0.10.0 --locked
fi
