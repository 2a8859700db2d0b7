#!/usr/bin/env bash
# Soak: wrk load through a release ferry while the manifests change 5 times a second
# (endpoints swapped between two backends), sampling ferry's RSS every 5 s. Bounded: 300 s by
# default. Fails when the RSS of the last third exceeds that of the middle third by more than
# 10% (memory growing with swaps), or when any request failed. Not part of CI.
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
seconds="${1:-300}"
cargo build --quiet --release --bin ferry
ferry=target/release/ferry

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
pids=()
tmp=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

a=$(free_port) b=$(free_port) http=$(free_port) admin=$(free_port) https=$(free_port)
"$ferry" backend --listen "127.0.0.1:$a" --name a 2>/dev/null & pids+=($!)
"$ferry" backend --listen "127.0.0.1:$b" --name b 2>/dev/null & pids+=($!)
mkdir "$tmp/m"
write() {
  cat >"$tmp/m/.soak.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: soak}
spec:
  ingressClassName: ferry
  rules: [{host: soak.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: $1}]}]
YAML
  mv "$tmp/m/.soak.yaml" "$tmp/m/soak.yaml"
}
write "$a"
FERRY_LOG=warn "$ferry" run --manifests "$tmp/m" --http-addr "127.0.0.1:$http" \
  --https-addr "127.0.0.1:$https" --admin-addr "127.0.0.1:$admin" --workers 1 \
  --reload-debounce 20ms 2>"$tmp/ferry.log" &
ferry_pid=$!
pids+=("$ferry_pid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done

(
  i=0
  end=$((SECONDS + seconds))
  while ((SECONDS < end)); do
    if ((i % 2)); then write "$a"; else write "$b"; fi
    i=$((i + 1))
    sleep 0.2
  done
) & pids+=($!)
(
  end=$((SECONDS + seconds))
  while ((SECONDS < end)); do
    awk '/VmRSS/ {print $2}' "/proc/$ferry_pid/status"
    sleep 5
  done
) >"$tmp/rss" & pids+=($!)
wrk -t2 -c32 -d"${seconds}s" -H 'Host: soak.test' "http://127.0.0.1:$http/" >"$tmp/wrk.txt"
sleep 1
generation=$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^ferry_snapshot_generation/ {print $2}')
echo "wrk:"; sed -n '/Requests\/sec/p;/Non-2xx/p;/errors/p;/requests in/p' "$tmp/wrk.txt"
echo "snapshots published: $generation"
echo "RSS samples (KiB, every 5 s): $(tr '\n' ' ' <"$tmp/rss")"
python3 - "$tmp/rss" "$tmp/wrk.txt" <<'PY'
import sys, re
rss = [int(x) for x in open(sys.argv[1]).read().split()]
wrk = open(sys.argv[2]).read()
third = max(1, len(rss) // 3)
middle = sum(rss[third:2 * third]) / max(1, len(rss[third:2 * third]))
last = sum(rss[-third:]) / third
growth = (last - middle) / middle if middle else 0
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
errors = re.search(r"Socket errors: .*", wrk)
print(f"RSS middle third {middle:.0f} KiB, last third {last:.0f} KiB, growth {growth:+.1%}")
failed = int(bad.group(1)) if bad else 0
if failed or errors:
    print(f"FAIL: {failed} non-2xx responses; {errors.group(0) if errors else ''}")
    sys.exit(1)
if growth > 0.10:
    print("FAIL: RSS grows under snapshot swaps")
    sys.exit(1)
print("ok: no failed request, RSS flat after warm-up")
PY
