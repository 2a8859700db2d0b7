#!/usr/bin/env python3
"""ferry against nginx and HAProxy, side by side on one machine, as ratios.

Each proxy serves the same route (host bench.test, prefix /) to the same two `ferry backend`
echo servers, configured as its ingress controller would configure it, with the same worker
count. Runs are interleaved (ferry, nginx, HAProxy, ferry, ...) and medians reported. Started
by `bench/compare`, which installs what it needs and builds ferry.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import ROOT, Lab, check, cpu_seconds, median as med, peak_rss_kib, percentile, wrk  # noqa: E402
import scenarios  # noqa: E402

PROXIES = ["ferry", "nginx", "haproxy"]

SCENARIOS = {
    # name: (scheme, connections, extra wrk headers, what it measures)
    "http-50": ("http", 50, [], "plain HTTP, keep-alive, 50 connections"),
    "http-200": ("http", 200, [], "plain HTTP, keep-alive, 200 connections"),
    "tls-50": ("https", 50, [], "TLS termination, keep-alive, 50 connections"),
    "newconn-50": ("http", 50, ["Connection: close"], "a new connection per request, 50 at once"),
}


def log(line):
    print(line, file=sys.stderr, flush=True)


def run(args):
    # A third backend for the churn scenario's flapping endpoint.
    lab = Lab(args.ferry, tempfile.mkdtemp(prefix="ferry-bench-"), backends=3)
    results = []  # dicts: scenario, workers, target, rep, metrics...
    try:
        # The ceiling: wrk straight at one backend.
        for name, (scheme, conns, headers, _) in SCENARIOS.items():
            if scheme == "http":
                for rep in range(args.reps):
                    m = wrk(lab, f"http://127.0.0.1:{lab.backends[0]}/", conns, args.seconds, headers)
                    results.append(dict(scenario=name, workers=0, target="backend", rep=rep, **m))
        for workers in args.workers:
            started = {p: lab.start(p, workers) for p in PROXIES}
            for proxy, (_, http, https) in started.items():
                check(proxy, http, https)
            for name, (scheme, conns, headers, _) in SCENARIOS.items():
                for rep in range(args.reps):
                    for proxy in PROXIES:  # interleaved: A B C A B C ...
                        proc, http, https = started[proxy]
                        port = http if scheme == "http" else https
                        before = cpu_seconds(proc.pid)
                        m = wrk(lab, f"{scheme}://127.0.0.1:{port}/", conns, args.seconds, headers)
                        m["cpu_per_100k"] = (cpu_seconds(proc.pid) - before) / max(m["requests"], 1) * 1e5
                        results.append(dict(scenario=name, workers=workers, target=proxy, rep=rep, **m))
                        log(f"{name:11} w{workers} {proxy:8} rep {rep}: {m['rps']:9.0f} req/s "
                            f"p99 {m['p99_ms']:.2f} ms errors {m['errors']}")
            for proxy, (proc, _, _) in started.items():
                rss = peak_rss_kib(proc.pid)
                results.append(dict(scenario="rss", workers=workers, target=proxy, rep=0, peak_rss_kib=rss))
                lab.stop(proc)
        if args.scale_hosts:
            results += scenarios.scale(lab, PROXIES, args.scale_hosts, args.reps, args.seconds, log)
        if args.churn_seconds and args.churn_seconds[1]:
            results += scenarios.churn(lab, args.churn_seconds[0], args.churn_seconds[1], 100, log)
        if args.changes:
            results += scenarios.change_to_served(lab, args.changes, log)
    finally:
        lab.close()
        shutil.rmtree(lab.tmp, ignore_errors=True)
    return results



def report(args, results):
    date = datetime.date.today().isoformat()
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, {platform.release()}"
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    versions = {
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0],
    }
    lines = [
        f"# ferry vs. nginx vs. HAProxy — {date}",
        "",
        f"Machine: {machine} ({cpu}). {versions['nginx']}; {versions['haproxy']}.",
        f"wrk -t2, {args.seconds} s per run, {args.reps} interleaved repetitions, medians. "
        "Each proxy routes host `bench.test` to the same two `ferry backend` echo servers "
        "(~350-byte JSON answers), configured as its ingress controller configures it "
        "(nginx: upstream keepalive, `proxy_http_version 1.1`; HAProxy: `http-reuse always`).",
        "",
    ]
    errors = sum(r.get("errors", 0) for r in results)
    summary = {}
    for workers in args.workers:
        lines += [f"## {workers} worker{'s' if workers > 1 else ''}", "",
                  "| scenario | proxy | req/s | p50 ms | p99 ms | p99.9 ms | CPU s / 100k req | errors | vs nginx | vs HAProxy |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, (_, _, _, what) in SCENARIOS.items():
            rows = {t: [r for r in results if r["scenario"] == name and r["workers"] == workers and r["target"] == t]
                    for t in PROXIES}
            rps = {t: med(rows[t], "rps") for t in PROXIES}
            for t in PROXIES:
                vs = lambda other: f"{rps[t] / rps[other]:.2f}" if rps[other] else "-"
                lines.append(
                    f"| {name} | {t} | {rps[t]:,.0f} | {med(rows[t], 'p50_ms'):.2f} | {med(rows[t], 'p99_ms'):.2f} | "
                    f"{med(rows[t], 'p999_ms'):.2f} | {med(rows[t], 'cpu_per_100k'):.2f} | "
                    f"{sum(r['errors'] for r in rows[t])} | {vs('nginx') if t != 'nginx' else ''} | "
                    f"{vs('haproxy') if t != 'haproxy' else ''} |")
            summary[(name, workers)] = rps
        rss = {r["target"]: r["peak_rss_kib"] for r in results if r["scenario"] == "rss" and r["workers"] == workers}
        lines += ["", "Peak RSS over the whole run: " + ", ".join(f"{t} {rss.get(t, 0) / 1024:.1f} MiB" for t in PROXIES), ""]
    ceiling = {name: med([r for r in results if r["scenario"] == name and r["target"] == "backend"], "rps")
               for name in SCENARIOS}
    lines += ["## Ceiling", "", "wrk straight at one backend: " +
              ", ".join(f"{n} {v:,.0f} req/s" for n, v in ceiling.items() if v), "",
              "## Scenarios", ""] + [f"- `{n}`: {w}" for n, (_, _, _, w) in SCENARIOS.items()]
    lines += scale_report(results) + churn_report(results) + change_report(results)
    lines += ["", f"Failed requests over all runs: {errors}.", "",
              f"Chart: [{args.name}.svg]({args.name}.svg) (requests/s relative to nginx).", ""]
    return "\n".join(lines), summary, errors


def scale_report(results):
    start = {r["target"]: r for r in results if r["scenario"] == "scale-start"}
    if not start:
        return []
    hosts = next(iter(start.values()))["hosts"]
    one_route = {t: med([r for r in results if r["scenario"] == "http-50" and r["workers"] == 1
                         and r["target"] == t], "rps") for t in PROXIES}
    peak = {r["target"]: r["peak_rss_kib"] for r in results if r["scenario"] == "scale-rss"}
    rows = {t: [r for r in results if r["scenario"] == "scale" and r["target"] == t] for t in PROXIES}
    rps = {t: med(rows[t], "rps") for t in PROXIES}
    lines = [
        "", f"## {hosts:,} hosts, {hosts * 5:,} endpoints", "",
        f"Each host its own Ingress rule (HAProxy: a host map), Service and five endpoints (five "
        f"echo servers on 127.0.0.11-15); 1 worker, 50 connections, each request to one of "
        f"{scenarios.SCALE_TARGETS} hosts spread over the table, chosen at random. \"serving\": "
        "from start to the first 200 from the last of those hosts; \"vs 1 route\": requests/s "
        "relative to the same proxy's `http-50` run with one route.",
        "",
        "| proxy | serving after s | RSS idle MiB | peak RSS MiB | req/s | p99 ms | CPU s / 100k req | errors | vs 1 route | vs nginx | vs HAProxy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in PROXIES:
        if t not in start:
            continue
        vs = lambda other: f"{rps[t] / rps[other]:.2f}" if rps.get(other) and other != t else ""
        vs_one_route = f"{rps[t] / one_route[t]:.2f}" if one_route[t] else "-"
        lines.append(
            f"| {t} | {start[t]['startup_s']:.1f} | {start[t]['rss_kib'] / 1024:.1f} | {peak.get(t, 0) / 1024:.1f} | "
            f"{rps[t]:,.0f} | {med(rows[t], 'p99_ms'):.2f} | {med(rows[t], 'cpu_per_100k'):.2f} | "
            f"{sum(r['errors'] for r in rows[t])} | {vs_one_route} | {vs('nginx')} | {vs('haproxy')} |")
    return lines


def churn_report(results):
    phases = {r["phase"]: r for r in results if r["scenario"] == "churn"}
    if len(phases) < 2:
        return []
    b, d = phases["before"], phases["during"]
    seconds = d["requests"] / d["rps"] if d["rps"] else 0
    return [
        "", "## Endpoint churn under load (ferry)", "",
        f"ferry (1 worker, `--reload-debounce 1ms`) under wrk -c50 while an EndpointSlice of the "
        f"routed Service flips a third endpoint between ready and not ready: {d['changes']:,} "
        f"changes in {seconds:.0f} s ({d['changes'] / max(seconds, 1):.0f}/s), {d['swaps']:.0f} "
        "snapshots swapped in. nginx and HAProxy are not measured here: stock nginx changes "
        "upstreams only by reloading (ingress-nginx's Lua balancer is not in Debian's nginx), "
        "and HAProxy's runtime API path is not scripted yet.",
        "",
        "| phase | req/s | p50 ms | p99 ms | p99.9 ms | failed |",
        "|---|---:|---:|---:|---:|---:|",
        f"| before | {b['rps']:,.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} | {b['p999_ms']:.2f} | {b['errors']} |",
        f"| during | {d['rps']:,.0f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | {d['p999_ms']:.2f} | {d['errors']} |",
    ]


def change_report(results):
    rows = [r for r in results if r["scenario"] == "change"]
    if not rows:
        return []
    lines = [
        "", "## From a change to serving it", "",
        "A new host is added and polled every millisecond until it answers 200. ferry: a new "
        "Ingress file in the watched folder, default settings (100 ms debounce: a burst of "
        "changes is one rebuild), and with the debounce at 1 ms. nginx: a new server block, then a reload (SIGHUP), which is how "
        "ingress-nginx applies a new host.",
        "",
        "| proxy | changes | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in scenarios.CHANGE_TARGETS:
        ms = sorted(r["ms"] for r in rows if r["target"] == t)
        if ms:
            lines.append(f"| {t} | {len(ms)} | {percentile(ms, 50):.1f} | "
                         f"{percentile(ms, 99):.1f} | {ms[-1]:.1f} |")
    return lines


def chart(args, summary):
    """Grouped bars: ferry and HAProxy throughput relative to nginx, per scenario and workers."""
    groups = [(n, w) for w in args.workers for n in SCENARIOS]
    colors = {"ferry": "#2b7bba", "nginx": "#999999", "haproxy": "#e08a2c"}
    width, height, left, bottom, top = 120 * len(groups) + 80, 340, 60, 60, 30
    plot_h = height - bottom - top
    vmax = max([summary[g][t] / summary[g]["nginx"] for g in groups for t in PROXIES if summary[g]["nginx"]] + [1.0])
    vmax = (int(vmax * 4) + 1) / 4
    y = lambda v: top + plot_h * (1 - v / vmax)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13">requests/s relative to nginx (higher is better)</text>']
    tick = 0.0
    while tick <= vmax + 1e-9:
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
        tick += 0.25
    for gi, g in enumerate(groups):
        x0 = left + 10 + gi * 120
        for ti, t in enumerate(PROXIES):
            v = summary[g][t] / summary[g]["nginx"] if summary[g]["nginx"] else 0
            x = x0 + ti * 32
            out.append(f'<rect x="{x}" y="{y(v):.1f}" width="28" height="{y(0) - y(v):.1f}" fill="{colors[t]}"/>'
                       f'<text x="{x + 14}" y="{y(v) - 3:.1f}" text-anchor="middle" font-size="9">{v:.2f}</text>')
        out.append(f'<text x="{x0 + 46}" y="{height - bottom + 16}" text-anchor="middle">{g[0]}</text>'
                   f'<text x="{x0 + 46}" y="{height - bottom + 30}" text-anchor="middle">{g[1]} worker(s)</text>')
    for ti, t in enumerate(PROXIES):
        out.append(f'<rect x="{left + ti * 90}" y="{height - 18}" width="10" height="10" fill="{colors[t]}"/>'
                   f'<text x="{left + ti * 90 + 14}" y="{height - 9}">{t}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ferry", required=True, help="the ferry binary")
    parser.add_argument("--seconds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2])
    parser.add_argument("--scale-hosts", type=int, default=10_000,
                        help="hosts in the large-table scenario (0: skip)")
    parser.add_argument("--churn-seconds", type=lambda s: [int(x) for x in s.split(",")], default=[20, 60],
                        help="BEFORE,DURING: seconds of load without and with endpoint churn (0,0: skip)")
    parser.add_argument("--changes", type=int, default=100, help="changes timed until served (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default=f"{datetime.date.today().isoformat()}-{platform.node()}")
    args = parser.parse_args()
    results = run(args)
    text, summary, errors = report(args, results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.svg").write_text(chart(args, summary))
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    print(text)
    if errors:
        raise SystemExit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
