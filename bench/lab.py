"""The lab every benchmark shares: echo backends, a certificate, the three proxies configured as
their ingress controllers configure them, wrk with its own percentiles, and process accounting
from /proc. Used by compare.py, scenarios.py and profile.py.
"""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc, timeout=20, host="127.0.0.1"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}: {getattr(proc, 'log_text', lambda: '')()}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
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


def rss_kib(pid, field="VmHWM"):
    """Resident memory of the process tree: peak (VmHWM) or now (VmRSS)."""
    total = 0
    for p in tree(pid):
        try:
            m = re.search(field + r":\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def peak_rss_kib(pid):
    return rss_kib(pid, "VmHWM")


class Lab:
    """Backends, certificates and the proxies under test, in a temporary folder."""

    def __init__(self, ferry_bin, tmp, backends=2):
        """`backends` echo servers; the proxies' `bench.test` route uses the first two."""
        self.ferry_bin = ferry_bin
        self.tmp = Path(tmp)
        self.procs = []
        self.backends = [free_port() for _ in range(backends)]
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
        self.routed = self.backends[:2]

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

    def start(self, proxy, workers, http=None, **options):
        """Starts `proxy`; returns (process, http port, https port)."""
        http, https = http or free_port(), free_port()
        return getattr(self, f"start_{proxy}")(workers, http, https, **options), http, https

    def add_backends(self, hosts, port):
        """More echo servers, one per loopback address in `hosts`, all on `port`."""
        for host in hosts:
            p = self.spawn([self.ferry_bin, "backend", "--listen", f"{host}:{port}", "--name", host],
                           f"backend-{host}")
            wait_port(port, "backend", p, host=host)

    def bench_manifests(self, m):
        """The `bench.test` route in a manifests folder `m`: what the other proxies serve."""
        m.mkdir(exist_ok=True)
        indent = lambda pem: "".join(f"    {l}\n" for l in pem.read_text().splitlines())
        slices = "".join(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: web-{i}, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\n"
            f"addressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
            for i, port in enumerate(self.routed))
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

    def start_ferry(self, workers, http, https, manifests=None, args=(), timeout=20):
        """ferry serving the folder `manifests` (by default one holding the bench route)."""
        if manifests is None:
            manifests = self.tmp / "manifests"
            self.bench_manifests(manifests)
        admin = free_port()
        env = dict(os.environ, FERRY_LOG="warn")
        p = self.spawn([self.ferry_bin, "run", "--manifests", manifests, "--workers", workers,
                        "--http-addr", f"127.0.0.1:{http}", "--https-addr", f"127.0.0.1:{https}",
                        "--admin-addr", f"127.0.0.1:{admin}",
                        "--default-ssl-certificate", "default/bench-tls", *args], "ferry", env)
        p.admin = admin
        wait_port(http, "ferry", p, timeout=timeout)
        return p

    def start_nginx(self, workers, http, https, extra="", name="nginx", timeout=20):
        # As ingress-nginx configures it: upstream keep-alive, HTTP/1.1 to upstreams, the
        # forwarding headers, no access log (ferry's is off at warn too). `extra` goes into
        # the http block.
        servers = "".join(f"    server 127.0.0.1:{p};\n" for p in self.routed)
        conf = self.tmp / f"{name}.conf"
        conf.write_text(f"""
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {self.tmp}/{name}.pid;
error_log {self.tmp}/{name}-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000;
  upstream web {{
{servers}    keepalive 320;
    keepalive_requests 10000;
  }}
  # Hosts without a rule get 404, as from ingress-nginx's default backend.
  server {{
    listen 127.0.0.1:{http} default_server;
    return 404;
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
{extra}
}}
""")
        p = self.spawn(["nginx", "-c", conf, "-p", self.tmp], name)
        wait_port(http, "nginx", p, timeout=timeout)
        return p

    def start_haproxy(self, workers, http, https, frontend="", backends="", name="haproxy", timeout=20):
        """HAProxy; `frontend` lines follow the bench route's, `backends` follow its backend."""
        servers = "".join(f"  server b{i} 127.0.0.1:{p}\n" for i, p in enumerate(self.routed))
        conf = self.tmp / f"{name}.cfg"
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
{frontend}
backend web
  balance roundrobin
{servers}
{backends}""")
        p = self.spawn(["haproxy", "-f", conf, "-db"], name)
        wait_port(http, "haproxy", p, timeout=timeout)
        return p


def check(proxy, http, https=None, host="bench.test"):
    """Each proxy must answer 200 from a backend, on both listeners, before it is measured."""
    urls = [f"http://127.0.0.1:{http}/"] + ([f"https://127.0.0.1:{https}/"] if https else [])
    for url in urls:
        out = subprocess.run(["curl", "-sk", "-H", f"Host: {host}", "-w", "\n%{http_code}", url],
                             capture_output=True, text=True).stdout
        body, _, status = out.rpartition("\n")
        if status != "200" or '"backend"' not in body:
            raise SystemExit(f"{proxy} does not proxy {url}: status {status}: {body[:200]}")


def wrk(lab, url, connections, seconds, headers, script=None):
    """wrk's figures as a dict; `script` (Lua) replaces the fixed `Host: bench.test`."""
    lua = lab.tmp / "wrk.lua"
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    if script:
        lua = lab.tmp / "wrk-custom.lua"
        lua.write_text(script + WRK_LUA)
    else:
        argv += ["-H", "Host: bench.test"]
    argv += ["-s", lua]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run([str(a) for a in argv + [url]], capture_output=True, text=True, check=True).stdout
    return wrk_figures(out)


def wrk_figures(out):
    """The figures of the WRKJSON line that WRK_LUA makes wrk print."""
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON "):])
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "requests": r["requests"],
        "p50_ms": r["p50"] / 1000, "p99_ms": r["p99"] / 1000, "p999_ms": r["p999"] / 1000,
        "errors": r["errors"] + r["non2xx"],
    }




def median(rows, key):
    """Median of `key` over result rows (0 without rows)."""
    values = [r[key] for r in rows]
    return statistics.median(values) if values else 0


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]
