#!/usr/bin/env python3
"""Profiles ferry under keep-alive HTTP load and writes the hot spots as markdown.

Started by `bench/profile`. The lab (backends, manifests, wrk) is lab.py's, so the profile
is of the scenario the comparison measures.
"""

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab as L  # noqa: E402

# Self time is grouped by who owns the code, by symbol name (first match wins).
COMPONENTS = [
    ("kernel (TCP over loopback, syscalls, scheduler)", r"^\[k\]"),
    ("allocator", r"\b(mi_|_mi_|malloc|_int_malloc|_int_free|cfree|free\b|realloc|unlink_chunk)"),
    ("memcpy/memmove", r"\b(__mem|memcpy|memmove|memset)"),
    ("pingora (HTTP/1 sessions, proxy state machine, pool)", r"pingora_"),
    ("HTTP types and parsing (http, httparse, bytes)", r"\b(http::|httparse|bytes::)"),
    ("tokio and mio (runtime, timers, I/O readiness)", r"\b(tokio|mio)::"),
    ("ferry (routing, balancing, metrics, logging hooks)", r"ferry_|prometheus|tracing"),
]


def perf_report(data, *args):
    # --no-inline: resolving inlined frames runs addr2line, minutes on a debug binary.
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-inline", *args],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?(\S+)?\s+(\[[.k]\].*?)\s*$", line)
        if m:
            # perf pads the symbol column and, without a terminal, ends rows with "-  -".
            rows.append((float(m.group(1)), re.sub(r"(\s+-)*\s*$", "", m.group(4))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ferry", required=True)
    parser.add_argument("--seconds", type=int, default=10, help="seconds sampled")
    parser.add_argument("--out", default=str(L.ROOT / "bench" / "results"))
    parser.add_argument("--name", default=f"{datetime.date.today().isoformat()}-{platform.node()}-profile")
    args = parser.parse_args()

    lab = L.Lab(args.ferry, tempfile.mkdtemp(prefix="ferry-profile-"))
    data = str(lab.tmp / "perf.data")
    load = {}
    try:
        proc, http, https = lab.start("ferry", 1)
        L.check("ferry", http, https)
        url = f"http://127.0.0.1:{http}/"
        runner = threading.Thread(target=lambda: load.update(
            L.wrk(lab, url, 50, args.seconds + 6, [])))
        runner.start()
        time.sleep(3)  # warm: pools filled, connections established
        subprocess.run(["perf", "record", "-F", "1999", "--call-graph", "dwarf,16384", "-o", data,
                        "-p", str(proc.pid), "--", "sleep", str(args.seconds)],
                       check=True, capture_output=True)
        runner.join()
        flat = perf_report(data, "--no-children", "--sort", "symbol", "-g", "none")
        children = perf_report(data, "--children", "--sort", "symbol", "-g", "none")
    finally:
        lab.close()
    if load.get("errors"):
        raise SystemExit(f"{load['errors']} requests failed under the profile's load")

    components = defaultdict(float)
    for pct, sym in flat:
        name = next((c for c, rx in COMPONENTS if re.search(rx, sym)), "other")
        components[name] += pct
    hooks = [(pct, sym) for pct, sym in children
             if re.search(r"FerryProxy as pingora_proxy::proxy_trait::ProxyHttp>::\w+::\{\{closure\}\}$|conn::Guard<A> as", sym)]
    lines = [
        f"# Where ferry's CPU goes — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.release()}. "
        f"ferry (release, 1 worker) under wrk -t2 -c50 keep-alive HTTP through one route to two "
        f"echo backends; `perf record -F 1999 --call-graph dwarf` on the ferry process for "
        f"{args.seconds} s. Load during the run: {load['rps']:,.0f} requests/s, p99 "
        f"{load['p99_ms']:.2f} ms, 0 failed.",
        "",
        "## By component (self time)",
        "",
        "| component | share of ferry's CPU |",
        "|---|---:|",
    ]
    for name, _ in COMPONENTS + [("other", "")]:
        lines.append(f"| {name} | {components.get(name, 0):.1f}% |")
    lines += ["", "## ferry's own hooks (including what they call)", "", "| hook | share |", "|---|---:|"]
    # A hook can appear as several symbols (its future's poll function in more than one
    # copy); the largest share stands for it, as the copies may nest.
    by_hook = {}
    for pct, sym in hooks:
        hook = re.search(r"::(\w+)::\{\{closure\}\}$", sym) if "FerryProxy" in sym else None
        name = hook.group(1) if hook else "conn::Guard (limits, phases)"
        by_hook[name] = max(pct, by_hook.get(name, 0))
    for name, pct in sorted(by_hook.items(), key=lambda kv: -kv[1]):
        lines.append(f"| `{name}` | {pct:.2f}% |")
    lines += ["", "## Top 25 symbols (self time)", "", "| self | symbol |", "|---:|---|"]
    lines += [f"| {p:.2f}% | `{s[:140]}` |" for p, s in flat[:25]]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
