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
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXIES = ["ferry", "nginx", "haproxy"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk reports its own percentiles (including p99.9) and errors as one JSON line.
WRK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
-- Anything but 200 is a failure (a redirect would otherwise pass for a fast proxy).
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency, requests)
  local not_ok = 0
  for _, t in ipairs(threads) do not_ok = not_ok + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50": %d, "p99": %d, "p999": %d, ' ..
    '"errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect + e.read + e.write + e.timeout, not_ok))
end
"""

SCENARIOS = {
    # name: (scheme, connections, extra wrk headers, what it measures)
    "http-50": ("http", 50, [], "plain HTTP, keep-alive, 50 connections"),
    "http-200": ("http", 200, [], "plain HTTP, keep-alive, 200 connections"),
    "tls-50": ("https", 50, [], "TLS termination, keep-alive, 50 connections"),
    "newconn-50": ("http", 50, ["Connection: close"], "a new connection per request, 50 at once"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}: {getattr(proc, 'log_text', lambda: '')()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"{what} is not listening on {port} after {timeout}s")


def tree(pid):
    """pid and its descendants (nginx's workers)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def peak_rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


class Lab:
    """Backends, certificates and the proxies under test, in a temporary folder."""

    def __init__(self, ferry_bin, tmp):
        self.ferry_bin = ferry_bin
        self.tmp = Path(tmp)
        self.procs = []
        self.backends = [free_port(), free_port()]
        for i, port in enumerate(self.backends):
            p = self.spawn([ferry_bin, "backend", "--listen", f"127.0.0.1:{port}", "--name", f"b{i}"], f"backend{i}")
            wait_port(port, "backend", p)
        key, crt = self.tmp / "tls.key", self.tmp / "tls.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench.test",
             "-addext", "subjectAltName=DNS:bench.test"],
            check=True, capture_output=True)
        self.key, self.crt = key, crt
        (self.tmp / "combined.pem").write_text(crt.read_text() + key.read_text())
        (self.tmp / "wrk.lua").write_text(WRK_LUA)

    def spawn(self, argv, name, env=None):
        path = self.tmp / f"{name}.log"
        log = open(path, "w")
        p = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=log, env=env, start_new_session=True)
        p.log_text = lambda: path.read_text()[-2000:]
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def close(self):
        for p in self.procs:
            self.stop(p)

    def start(self, proxy, workers):
        """Starts `proxy`; returns (process, http port, https port)."""
        http, https = free_port(), free_port()
        return getattr(self, f"start_{proxy}")(workers, http, https), http, https

    def start_ferry(self, workers, http, https):
        m = self.tmp / "manifests"
        m.mkdir(exist_ok=True)
        indent = lambda pem: "".join(f"    {l}\n" for l in pem.read_text().splitlines())
        slices = "".join(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: web-{i}, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\n"
            f"addressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
            for i, port in enumerate(self.backends))
        (m / "bench.yaml").write_text(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bench, namespace: default,\n"
            "  annotations: {ferry.dev/ssl-redirect: 'false'}}\n"
            "spec:\n  ingressClassName: ferry\n  tls: [{hosts: [bench.test], secretName: bench-tls}]\n"
            "  rules: [{host: bench.test, http: {paths: [{path: /, pathType: Prefix, "
            "backend: {service: {name: web, port: {number: 80}}}}]}}]\n"
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
            "spec: {ports: [{port: 80}]}\n" + slices +
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: default}\n"
            f"type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{indent(self.crt)}  tls.key: |\n{indent(self.key)}")
        admin = free_port()
        env = dict(os.environ, FERRY_LOG="warn")
        p = self.spawn([self.ferry_bin, "run", "--manifests", m, "--workers", workers,
                        "--http-addr", f"127.0.0.1:{http}", "--https-addr", f"127.0.0.1:{https}",
                        "--admin-addr", f"127.0.0.1:{admin}",
                        "--default-ssl-certificate", "default/bench-tls"], "ferry", env)
        wait_port(http, "ferry", p)
        return p

    def start_nginx(self, workers, http, https):
        # As ingress-nginx configures it: upstream keep-alive, HTTP/1.1 to upstreams, the
        # forwarding headers, no access log (ferry's is off at warn too).
        servers = "".join(f"    server 127.0.0.1:{p};\n" for p in self.backends)
        conf = self.tmp / "nginx.conf"
        conf.write_text(f"""
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/nginx-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000;
  upstream web {{
{servers}    keepalive 320;
    keepalive_requests 10000;
  }}
  server {{
    listen 127.0.0.1:{http} reuseport backlog=4096;
    listen 127.0.0.1:{https} ssl reuseport backlog=4096;
    server_name bench.test;
    ssl_certificate {self.crt};
    ssl_certificate_key {self.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    location / {{
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering on;
    }}
  }}
}}
""")
        p = self.spawn(["nginx", "-c", conf, "-p", self.tmp], "nginx")
        wait_port(http, "nginx", p)
        return p

    def start_haproxy(self, workers, http, https):
        servers = "".join(f"  server b{i} 127.0.0.1:{p}\n" for i, p in enumerate(self.backends))
        conf = self.tmp / "haproxy.cfg"
        conf.write_text(f"""
global
  nbthread {workers}
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:{http}
  bind 127.0.0.1:{https} ssl crt {self.tmp}/combined.pem alpn http/1.1
  use_backend web if {{ hdr(host) -i bench.test }}
backend web
  balance roundrobin
{servers}""")
        p = self.spawn(["haproxy", "-f", conf, "-db"], "haproxy")
        wait_port(http, "haproxy", p)
        return p


def check(proxy, http, https):
    """Each proxy must answer 200 from a backend, on both listeners, before it is measured."""
    for url in (f"http://127.0.0.1:{http}/", f"https://127.0.0.1:{https}/"):
        out = subprocess.run(["curl", "-sk", "-H", "Host: bench.test", "-w", "\n%{http_code}", url],
                             capture_output=True, text=True).stdout
        body, _, status = out.rpartition("\n")
        if status != "200" or '"backend"' not in body:
            raise SystemExit(f"{proxy} does not proxy {url}: status {status}: {body[:200]}")


def wrk(lab, url, connections, seconds, headers):
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", lab.tmp / "wrk.lua", "-H", "Host: bench.test"]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run([str(a) for a in argv + [url]], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON "):])
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "requests": r["requests"],
        "p50_ms": r["p50"] / 1000, "p99_ms": r["p99"] / 1000, "p999_ms": r["p999"] / 1000,
        "errors": r["errors"] + r["non2xx"],
    }


def run(args):
    lab = Lab(args.ferry, tempfile.mkdtemp(prefix="ferry-bench-"))
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
                        print(f"{name:11} w{workers} {proxy:8} rep {rep}: {m['rps']:9.0f} req/s "
                              f"p99 {m['p99_ms']:.2f} ms errors {m['errors']}", file=sys.stderr)
            for proxy, (proc, _, _) in started.items():
                rss = peak_rss_kib(proc.pid)
                results.append(dict(scenario="rss", workers=workers, target=proxy, rep=0, peak_rss_kib=rss))
                lab.stop(proc)
    finally:
        lab.close()
        shutil.rmtree(lab.tmp, ignore_errors=True)
    return results


def med(rows, key):
    values = [r[key] for r in rows]
    return statistics.median(values) if values else 0


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
    lines += ["", f"Failed requests over all runs: {errors}.", "",
              f"Chart: [{args.name}.svg]({args.name}.svg) (requests/s relative to nginx).", ""]
    return "\n".join(lines), summary, errors


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
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1, 2])
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
