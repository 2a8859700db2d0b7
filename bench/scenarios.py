"""Scenarios beyond steady load on one route, run by compare.py:

- `scale`: a routing table of N hosts (10,000 by default), each its own Service with five
  endpoints (50,000 in all), on all three proxies: start-up time, memory, and throughput with
  requests spread over 100 hosts across the table.
- `churn`: ferry under load while an EndpointSlice changes 100 times a second: failed requests
  (must be 0) and latency before and during.
- `change_to_served`: how long after a manifest change the change is served, over many changes:
  ferry (its file watch, debounce, translation and swap) against nginx (configuration file plus
  reload, which is what ingress-nginx does for a new host).
"""

import os
import re
import signal
import threading
import time
import http.client
import urllib.request

from lab import check, cpu_seconds, free_port, percentile, rss_kib, wrk

# The scale scenario's endpoints: five echo servers, one per loopback address, on one port, so
# that one EndpointSlice (one port) lists all five endpoints of a Service.
SCALE_ADDRESSES = [f"127.0.0.{i}" for i in range(11, 16)]
# Requests go to this many hosts spread evenly over the table (upstream connection reuse is
# per upstream in nginx and HAProxy; a host picked at random among 10,000 would measure
# connection set-up, not routing).
SCALE_TARGETS = 100


def scale_host(i):
    return f"h{i}.scale.test"


def write_atomically(path, text):
    """Writes `text` to `path` so that a watcher never reads half a file."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def ferry_scale_manifests(folder, hosts, port):
    folder.mkdir(exist_ok=True)
    endpoints = ", ".join(f"{{addresses: [{a}]}}" for a in SCALE_ADDRESSES)
    with open(folder / "scale.yaml", "w") as f:
        for i in range(hosts):
            f.write(
                f"---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: s{i}, namespace: scale}}\n"
                f"spec:\n  ingressClassName: ferry\n  rules: [{{host: {scale_host(i)}, http: {{paths: [{{path: /, "
                f"pathType: Prefix, backend: {{service: {{name: s{i}, port: {{number: 80}}}}}}}}]}}}}]\n"
                f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: scale}}\n"
                f"spec: {{ports: [{{port: 80}}]}}\n"
                f"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                f"metadata: {{name: s{i}-a, namespace: scale, labels: {{kubernetes.io/service-name: s{i}}}}}\n"
                f"addressType: IPv4\nports: [{{port: {port}}}]\nendpoints: [{endpoints}]\n")


def nginx_scale_config(hosts, port, http):
    servers = "".join(f"    server {a}:{port};\n" for a in SCALE_ADDRESSES)
    blocks = ["  server_names_hash_max_size 65536;\n  server_names_hash_bucket_size 128;\n"]
    for i in range(hosts):
        blocks.append(
            f"  upstream s{i} {{\n{servers}    keepalive 8;\n  }}\n"
            f"  server {{\n    listen 127.0.0.1:{http};\n    server_name {scale_host(i)};\n"
            f"    location / {{\n      proxy_pass http://s{i};\n      proxy_http_version 1.1;\n"
            "      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n"
            "      proxy_set_header X-Real-IP $remote_addr;\n      proxy_set_header X-Forwarded-For $remote_addr;\n"
            "      proxy_set_header X-Forwarded-Host $host;\n      proxy_set_header X-Forwarded-Proto $scheme;\n"
            "    }\n  }\n")
    return "".join(blocks)


def haproxy_scale_config(lab, hosts, port):
    """A host map to one backend per Service, as HAProxy-based ingress controllers do it."""
    hosts_map = lab.tmp / "scale-hosts.map"
    hosts_map.write_text("".join(f"{scale_host(i)} s{i}\n" for i in range(hosts)))
    frontend = f"  use_backend %[req.hdr(host),lower,map({hosts_map})]\n"
    servers = "".join(f"  server e{j} {a}:{port}\n" for j, a in enumerate(SCALE_ADDRESSES))
    backends = "".join(f"backend s{i}\n  balance roundrobin\n{servers}" for i in range(hosts))
    return frontend, backends


def status(port, host, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def scale(lab, proxies, hosts, reps, seconds, log):
    """Start-up, memory and throughput of each proxy with `hosts` hosts and 5x as many endpoints."""
    port = free_port()
    lab.add_backends(SCALE_ADDRESSES, port)
    targets = [scale_host(i * hosts // SCALE_TARGETS) for i in range(min(SCALE_TARGETS, hosts))]
    script = ("local hosts = {" + ", ".join(f'"{h}"' for h in targets) + "}\n"
              "request = function() return wrk.format(nil, nil, {Host = hosts[math.random(#hosts)]}) end\n")
    results, started = [], {}
    try:
        for proxy in proxies:
            t0 = time.monotonic()
            if proxy == "ferry":
                folder = lab.tmp / "manifests-scale"
                lab.bench_manifests(folder)
                ferry_scale_manifests(folder, hosts, port)
                proc, http, _ = lab.start("ferry", 1, manifests=folder, timeout=300)
            elif proxy == "nginx":
                http = free_port()
                proc, http, _ = lab.start("nginx", 1, http=http, extra=nginx_scale_config(hosts, port, http),
                                          name="nginx-scale", timeout=300)
            else:
                frontend, backends = haproxy_scale_config(lab, hosts, port)
                proc, http, _ = lab.start("haproxy", 1, frontend=frontend, backends=backends,
                                          name="haproxy-scale", timeout=300)
            poll_until_served(http, targets[-1], proc, timeout=300, interval=0.01)
            startup = time.monotonic() - t0
            for host in (targets[0], targets[-1]):
                check(proxy, http, host=host)
            time.sleep(1)  # settle before reading memory: start-up buffers freed, not a wait
            idle = rss_kib(proc.pid, "VmRSS")
            log(f"scale      {proxy:8} {hosts} hosts: serving after {startup:.1f} s, RSS {idle / 1024:.1f} MiB")
            results.append(dict(scenario="scale-start", target=proxy, workers=1, rep=0, hosts=hosts,
                                startup_s=startup, rss_kib=idle))
            started[proxy] = (proc, http)
        for rep in range(reps):
            for proxy in proxies:
                proc, http = started[proxy]
                before = cpu_seconds(proc.pid)
                m = wrk(lab, f"http://127.0.0.1:{http}/", 50, seconds, [], script=script)
                m["cpu_per_100k"] = (cpu_seconds(proc.pid) - before) / max(m["requests"], 1) * 1e5
                results.append(dict(scenario="scale", target=proxy, workers=1, rep=rep, hosts=hosts, **m))
                log(f"scale      {proxy:8} rep {rep}: {m['rps']:9.0f} req/s p99 {m['p99_ms']:.2f} ms "
                    f"errors {m['errors']}")
        for proxy, (proc, _) in started.items():
            results.append(dict(scenario="scale-rss", target=proxy, workers=1, rep=0, hosts=hosts,
                                peak_rss_kib=rss_kib(proc.pid, "VmHWM")))
    finally:
        for proc, _ in started.values():
            lab.stop(proc)
    return results


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def churn(lab, before_s, during_s, rate, log):
    """ferry under load while one EndpointSlice of the routed Service flips `rate` times a second
    between a ready and a not-ready endpoint (a third backend). Rebuilds are not debounced
    (`--reload-debounce 1ms`), so nearly every change is a snapshot swap."""
    folder = lab.tmp / "manifests-churn"
    lab.bench_manifests(folder)
    third = lab.backends[2]
    slice_yaml = lambda ready: (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: web-churn, namespace: default, labels: {kubernetes.io/service-name: web}}\n"
        f"addressType: IPv4\nports: [{{port: {third}}}]\n"
        f"endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: {str(ready).lower()}}}}}]\n")
    write_atomically(folder / "churn.yaml", slice_yaml(True))
    proc, http, _ = lab.start("ferry", 1, manifests=folder, args=["--reload-debounce", "1ms"])
    results = []
    try:
        check("ferry", http)
        url = f"http://127.0.0.1:{http}/"
        wrk(lab, url, 50, 2, [])  # warm-up: pooled connections, caches
        calm = wrk(lab, url, 50, before_s, [])
        results.append(dict(scenario="churn", phase="before", target="ferry", workers=1, rep=0, **calm))
        stop = threading.Event()
        changes = [0]

        def flip():
            t0 = time.monotonic()
            while not stop.is_set():
                changes[0] += 1
                write_atomically(folder / "churn.yaml", slice_yaml(changes[0] % 2 == 0))
                delay = t0 + changes[0] / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        generation = metric(proc.admin, "ferry_snapshot_generation")
        writer = threading.Thread(target=flip)
        writer.start()
        try:
            during = wrk(lab, url, 50, during_s, [])
        finally:
            stop.set()
            writer.join()
        swaps = metric(proc.admin, "ferry_snapshot_generation") - generation
        results.append(dict(scenario="churn", phase="during", target="ferry", workers=1, rep=0,
                            changes=changes[0], swaps=swaps, **during))
        log(f"churn      ferry: {changes[0]} changes, {swaps:.0f} swaps; p99 {calm['p99_ms']:.2f} -> "
            f"{during['p99_ms']:.2f} ms; errors {calm['errors']} + {during['errors']}")
    finally:
        lab.stop(proc)
    return results


CHANGE_TARGETS_FERRY = [("ferry", []), ("ferry, --reload-debounce 1ms", ["--reload-debounce", "1ms"])]
CHANGE_TARGETS = [t for t, _ in CHANGE_TARGETS_FERRY] + ["nginx"]


def change_to_served(lab, changes, log):
    """For each of `changes` new hosts: the time from the change (file in place; for nginx, the
    reload signal after it) to the first 200 for that host, polled every millisecond."""
    results = []
    # ferry: a new Ingress file in the watched folder; default settings, then without debounce.
    for target, args in CHANGE_TARGETS_FERRY:
        folder = lab.tmp / f"manifests-latency-{len(args)}"
        lab.bench_manifests(folder)
        proc, http, _ = lab.start("ferry", 1, manifests=folder, args=args)
        try:
            for i in range(changes):
                host = f"new{i}.test"
                ingress = (
                    f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: new{i}, namespace: default}}\n"
                    f"spec:\n  ingressClassName: ferry\n  rules: [{{host: {host}, http: {{paths: [{{path: /, "
                    "pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]\n")
                if status(http, host) != 404:
                    raise SystemExit(f"{target}: {host} answered before it was added")
                write_atomically(folder / f"new{i}.yaml", ingress)
                results.append(dict(scenario="change", target=target, rep=i, workers=1,
                                    ms=poll_until_served(http, host, proc)))
        finally:
            lab.stop(proc)
    # nginx: a server block in an included folder, then a reload (SIGHUP to the master).
    conf_d = lab.tmp / "nginx-latency.d"
    conf_d.mkdir(exist_ok=True)
    proc, http, _ = lab.start("nginx", 1, extra=f"  include {conf_d}/*.conf;\n", name="nginx-latency")
    try:
        check("nginx", http)
        for i in range(changes):
            host = f"new{i}.test"
            if status(http, host) != 404:
                raise SystemExit(f"nginx: {host} answered before it was added")
            (conf_d / f"new{i}.conf").write_text(
                f"server {{\n  listen 127.0.0.1:{http};\n  server_name {host};\n"
                "  location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n}\n")
            os.kill(proc.pid, signal.SIGHUP)
            results.append(dict(scenario="change", target="nginx", rep=i, workers=1,
                                ms=poll_until_served(http, host, proc)))
    finally:
        lab.stop(proc)
    for target in CHANGE_TARGETS:
        ms = sorted(r["ms"] for r in results if r["target"] == target)
        log(f"change     {target:8} p50 {percentile(ms, 50):.1f} ms p99 {percentile(ms, 99):.1f} ms")
    return results


def poll_until_served(http, host, proc, timeout=30, interval=0.001):
    """Milliseconds until the proxy on port `http` answers 200 for `host` (a proxy may listen
    before it routes), polled every `interval` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if status(http, host) == 200:
            return (time.monotonic() - started) * 1e3
        if proc.poll() is not None:
            raise SystemExit(f"exited while waiting for {host}: {proc.log_text()}")
        time.sleep(interval)
    raise SystemExit(f"{host} not served within {timeout} s")

