#!/usr/bin/env python3
"""ferry's L4 path against kube-proxy's rule sets, in network namespaces this script makes.

ClusterIP Services three ways, each in a client namespace of its own (so conntrack and hooks
of one never tax another), all reaching the same three echo backends in one pod namespace:

- ferry: socket LB (cgroup connect hooks), the client in the cgroup ferry serves;
- iptables: kube-proxy's iptables-mode rules (KUBE-SERVICES -> KUBE-SVC-* with `statistic`
  random -> KUBE-SEP-* DNAT), loaded with iptables-restore;
- nftables: kube-proxy's nftables-mode shape (a verdict map of ClusterIP . proto . port ->
  service chain, `numgen random` -> endpoint chains with dnat), loaded with nft -f.

At 1 and at 10,000 Services (two endpoints each): keep-alive and new-connection-per-request
throughput (wrk), connect latency (`ferry probe`), and at 10,000 the time from changing one
Service's endpoints to a client reaching the new endpoint. Started by `bench/l4`.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import ROOT, WRK_LUA, median, percentile, wrk_figures  # noqa: E402

MODES = ["ferry", "iptables", "nftables"]
# Each mode's Services live in their own range; the client namespaces route it (ferry's:
# blackholed, as nothing may leave unredirected; the others': into the pod namespace, which
# does not forward, as kube-proxy needs a route for the DNAT to happen after).
RANGES = {"ferry": 96, "iptables": 97, "nftables": 98}
# NodePort: a client namespace, a node namespace (ferry's TC programs on its eth0, or
# kube-proxy's PREROUTING rules) and the pod namespace behind it, per mode.
NODEPORT_MODES = {"ferry": 3, "iptables": 4}
NODEPORT = 30080
PORTS = {"a": 8080, "b": 8081, "c": 8082}


def sh(*argv, check=True, input=None):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))[:200]}: {r.stderr.strip()}")
    return r.stdout


def cluster_ip(mode, i):
    n = i + 1  # 10.9x.0.1 upwards
    return f"10.{RANGES[mode]}.{n // 256}.{n % 256}"


class Net:
    def __init__(self, ferry_bin):
        self.ferry = ferry_bin
        self.id = f"fb{os.getpid() % 10000}-"
        self.tmp = Path(tempfile.mkdtemp(prefix="ferry-l4-bench-"))
        self.mounts = Path(f"/run/ferry-bench-{os.getpid()}")
        self.procs = []
        self.ferry_proc = None
        # Services programmed per mode (as last served), and the sizes being configured.
        self.sizes = {}
        self.current_n = self.ferry_n = self.nft_n = None

    def ns(self, name):
        return f"{self.id}{name}"

    def up(self):
        if os.geteuid() != 0:
            raise SystemExit("bench/l4 needs root (network namespaces, BPF, iptables)")
        for fs in ("cgroup2", "bpf"):
            (self.mounts / fs).mkdir(parents=True, exist_ok=True)
            sh("mount", "-t", fs, fs, self.mounts / fs)
        self.cgroup = self.mounts / "cgroup2" / f"ferry-bench-{os.getpid()}"
        self.cgroup.mkdir()
        sh("ip", "netns", "add", self.ns("pod"))
        sh("ip", "-n", self.ns("pod"), "link", "set", "lo", "up")
        for k, mode in enumerate(MODES):
            c = self.ns(mode)
            sh("ip", "netns", "add", c)
            sh("ip", "-n", c, "link", "set", "lo", "up")
            sh("ip", "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", f"v{k}",
               "netns", self.ns("pod"))
            sh("ip", "-n", c, "addr", "add", f"10.77.{k}.1/24", "dev", "eth0")
            sh("ip", "-n", c, "link", "set", "eth0", "up")
            sh("ip", "-n", self.ns("pod"), "addr", "add", f"10.77.{k}.2/24", "dev", f"v{k}")
            sh("ip", "-n", self.ns("pod"), "link", "set", f"v{k}", "up")
            service_range = f"10.{RANGES[mode]}.0.0/16"
            if mode == "ferry":
                sh("ip", "-n", c, "route", "add", "blackhole", service_range)
            else:
                sh("ip", "-n", c, "route", "add", service_range, "dev", "eth0")
        for name, port in PORTS.items():
            self.spawn("pod", name, [self.ferry, "backend", "--listen", f"0.0.0.0:{port}", "--name", name])
        self.wait_listening("pod", PORTS.values())

    def wait_listening(self, ns, ports, timeout=20):
        """Until every TCP port in `ports` is listened on in namespace `ns`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = sh("ip", "netns", "exec", self.ns(ns), "ss", "-Hltn")
            listening = {line.split()[3].rsplit(":", 1)[1] for line in out.splitlines() if line.strip()}
            if {str(p) for p in ports} <= listening:
                return
            time.sleep(0.05)
        raise SystemExit(f"backends not listening in {ns} within {timeout} s")

    def spawn(self, ns, name, argv):
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(ns)] + [str(a) for a in argv],
                             stdout=log, stderr=log, start_new_session=True)
        self.procs.append(p)
        return p

    def in_client(self, mode, argv):
        """argv as run in `mode`'s client namespace (and for ferry, in its cgroup)."""
        argv = ["ip", "netns", "exec", self.ns(mode)] + [str(a) for a in argv]
        if mode == "ferry":
            argv = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh"] + argv
        return argv

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 15)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait()
        for ns in ["pod"] + MODES + [f"{role}-{m}" for m in NODEPORT_MODES for role in ("nclient", "node")]:
            subprocess.run(["ip", "netns", "del", self.ns(ns)], capture_output=True)
        if hasattr(self, "cgroup"):
            subprocess.run(["rmdir", self.cgroup], capture_output=True)
            subprocess.run(["rmdir", f"{self.cgroup}-np"], capture_output=True)
        for fs in ("bpf", "cgroup2"):
            subprocess.run(["umount", self.mounts / fs], capture_output=True)
        subprocess.run(["rm", "-rf", self.mounts, self.tmp], capture_output=True)

    # --- configuring each mode with n Services -------------------------------------------

    def endpoints(self, i, changed):
        return ["c"] if changed and i == 0 else ["a", "b"]

    def configure(self, n, changed=False):
        """Programs n Services in every mode; returns seconds each took to take effect."""
        self.current_n = n
        return {mode: getattr(self, f"configure_{mode}")(n, changed) for mode in MODES}

    def ferry_manifests(self, n, changed):
        folder = self.tmp / "manifests"
        folder.mkdir(exist_ok=True)
        pod = "10.77.0.2"

        def service(i):
            slices = "".join(
                f"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                f"metadata: {{name: s{i}-{e}, namespace: bench, labels: {{kubernetes.io/service-name: s{i}}}}}\n"
                f"addressType: IPv4\nports: [{{name: http, port: {PORTS[e]}, protocol: TCP}}]\n"
                f"endpoints: [{{addresses: [{pod}], conditions: {{ready: true}}}}]\n"
                for e in self.endpoints(i, changed))
            return (f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: bench}}\n"
                    f"spec: {{clusterIP: {cluster_ip('ferry', i)}, ports: [{{name: http, port: 80, "
                    f"targetPort: 8080, protocol: TCP}}]}}\n" + slices)

        # Service 0 in a file of its own: the one the update changes.
        rest = folder / "services.yaml"
        if not rest.exists() or self.ferry_n != n:
            staged = self.tmp / "services.yaml.new"
            with open(staged, "w") as f:
                for i in range(1, n):
                    f.write(service(i))
            os.replace(staged, rest)
        staged = self.tmp / "s0.yaml.new"
        staged.write_text(service(0))
        os.replace(staged, folder / "s0.yaml")
        self.ferry_n = n
        return folder

    def configure_ferry(self, n, changed):
        poller = self.poller("ferry", n, changed)
        started = time.monotonic()
        folder = self.ferry_manifests(n, changed)
        if self.ferry_proc is None:
            self.ferry_proc = self.spawn("ferry", "ferry", [
                self.ferry, "run", "--manifests", folder, "--l4", "--cgroup-path", self.cgroup,
                "--bpf-pin-path", self.mounts / "bpf" / "ferry", "--devices", "eth0",
                "--http-addr", "127.0.0.1:18080", "--https-addr", "127.0.0.1:18443",
                "--admin-addr", "127.0.0.1:10254", "--reload-debounce", "1ms"])
        return self.served_after(poller, "ferry", started)

    def iptables_rules(self, n, changed):
        lines = ["*nat", ":KUBE-SERVICES - [0:0]"]
        rules = []
        for i in range(n):
            svc = f"KUBE-SVC-{i}"
            eps = self.endpoints(i, changed)
            lines.append(f":{svc} - [0:0]")
            rules.append(f"-A KUBE-SERVICES -d {cluster_ip('iptables', i)}/32 -p tcp -m tcp --dport 80 -j {svc}")
            for k, e in enumerate(eps):
                sep = f"KUBE-SEP-{i}-{e}"
                lines.append(f":{sep} - [0:0]")
                left = len(eps) - k
                if left > 1:
                    rules.append(f"-A {svc} -m statistic --mode random --probability {1 / left:.11f} -j {sep}")
                else:
                    rules.append(f"-A {svc} -j {sep}")
                rules.append(f"-A {sep} -p tcp -m tcp -j DNAT --to-destination 10.77.1.2:{PORTS[e]}")
        # As kube-proxy: every locally generated connection goes through KUBE-SERVICES.
        rules.append("-A OUTPUT -j KUBE-SERVICES")
        return "\n".join(lines + rules + ["COMMIT", ""])

    def configure_iptables(self, n, changed):
        poller = self.poller("iptables", n, changed)
        started = time.monotonic()
        # A full resync, as kube-proxy does on start and periodically (iptables-restore of
        # the whole table; it replaces the chains it names).
        sh("ip", "netns", "exec", self.ns("iptables"), "iptables-restore", input=self.iptables_rules(n, changed))
        return self.served_after(poller, "iptables", started)

    def nft_ruleset(self, n, changed):
        out = ["table ip kube-proxy {",
               "  map service-ips {",
               "    type ipv4_addr . inet_proto . inet_service : verdict",
               "    elements = {"]
        out.append(",\n".join(f"      {cluster_ip('nftables', i)} . tcp . 80 : goto service-{i}" for i in range(n)))
        out += ["    }", "  }"]
        for i in range(n):
            out.append(self.nft_service_chains(i, changed))
        out += ["  chain nat-output {",
                "    type nat hook output priority -100; policy accept;",
                "    ip daddr . meta l4proto . th dport vmap @service-ips",
                "  }",
                "}"]
        return "\n".join(out) + "\n"

    def nft_service_chains(self, i, changed):
        eps = self.endpoints(i, changed)
        vmap = ", ".join(f"{k} : goto endpoint-{i}-{e}" for k, e in enumerate(eps))
        chains = [f"  chain service-{i} {{\n    numgen random mod {len(eps)} vmap {{ {vmap} }}\n  }}"]
        chains += [f"  chain endpoint-{i}-{e} {{\n    meta l4proto tcp dnat to 10.77.2.2:{PORTS[e]}\n  }}" for e in eps]
        return "\n".join(chains)

    def configure_nftables(self, n, changed):
        ns = self.ns("nftables")
        poller = self.poller("nftables", n, changed)
        started = time.monotonic()
        exists = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "kube-proxy"],
                                capture_output=True).returncode == 0
        if exists and self.nft_n == n:
            # One Service changed: as kube-proxy's nftables mode, a transaction that rewrites
            # only that Service's chains.
            eps = self.endpoints(0, changed)
            vmap = ", ".join(f"{k} : goto endpoint-0-{e}" for k, e in enumerate(eps))
            script = ["flush chain ip kube-proxy service-0"]
            for e in eps:
                script += [f"add chain ip kube-proxy endpoint-0-{e}",
                           f"flush chain ip kube-proxy endpoint-0-{e}",
                           f"add rule ip kube-proxy endpoint-0-{e} meta l4proto tcp dnat to 10.77.2.2:{PORTS[e]}"]
            script.append(f"add rule ip kube-proxy service-0 numgen random mod {len(eps)} vmap {{ {vmap} }}")
            sh("ip", "netns", "exec", ns, "nft", "-f", "-", input="\n".join(script) + "\n")
        else:
            if exists:
                sh("ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "kube-proxy")
            sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=self.nft_ruleset(n, changed))
            self.nft_n = n
        return self.served_after(poller, "nftables", started)

    def poller(self, mode, n, changed, timeout=120):
        """A client in `mode`'s namespace connecting every millisecond until the Service it
        watches answers from an expected backend; it prints the time (CLOCK_MONOTONIC, shared
        by all processes) when that first happens. For a whole set it watches the last Service
        (new with the set); for an update, Service 0 (whose endpoints change). Returns once it
        is polling, so that its start-up is not counted."""
        watched = n - 1 if not self.programmed(mode, n) else 0
        want = set(self.endpoints(watched, changed))
        script = self.tmp / "poll.py"
        script.write_text(
            "import json, socket, sys, time\n"
            "host, port = sys.argv[1].rsplit(':', 1)\n"
            "want, deadline = set(sys.argv[2].split(',')), time.monotonic() + float(sys.argv[3])\n"
            "first = True\n"
            "while time.monotonic() < deadline:\n"
            "    name = None\n"
            "    try:\n"
            "        s = socket.create_connection((host, int(port)), timeout=0.02)\n"
            "        s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
            "        data = b''\n"
            "        while chunk := s.recv(4096):\n"
            "            data += chunk\n"
            "        s.close()\n"
            "        name = json.loads(data.split(b'\\r\\n\\r\\n', 1)[1])['backend']\n"
            "    except (OSError, ValueError, KeyError, IndexError):\n"
            "        pass\n"
            "    if first:\n"
            "        print('polling', flush=True)\n"
            "        first = False\n"
            "    elif name in want:\n"
            "        print(time.monotonic(), flush=True)\n"
            "        sys.exit(0)\n"
            "    time.sleep(0.001)\n"
            "sys.exit(1)\n")
        p = subprocess.Popen(self.in_client(mode, [sys.executable, script, f"{cluster_ip(mode, watched)}:80",
                                                   ",".join(sorted(want)), timeout]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "polling":
            raise SystemExit(f"{mode}: the poller did not start: {p.stderr.read()}")
        p.want, p.watched = want, watched
        return p

    def programmed(self, mode, n):
        return self.sizes.get(mode) == n

    def served_after(self, p, mode, started):
        """Seconds from `started` until the poller saw the expected backend."""
        out, err = p.communicate()
        if p.returncode != 0:
            log = (self.tmp / "ferry.log").read_text()[-2000:] if mode == "ferry" else ""
            raise SystemExit(f"{mode}: Service {p.watched} not served by {p.want}: {err} {log}")
        self.sizes[mode] = self.ferry_n if mode == "ferry" else self.current_n
        return float(out.strip()) - started

    # --- NodePort ---------------------------------------------------------------------------

    def nodeport_up(self):
        """client 10.78.k.2 -> node 10.78.k.1 (eth0) | node 10.79.k.1 (pod0) -> pod 10.79.k.2.
        The Service has externalTrafficPolicy Local and its endpoints on this node, so both
        modes only DNAT (no SNAT), and replies return through the node."""
        pod = self.ns("pod")
        for mode, k in NODEPORT_MODES.items():
            client, node = self.ns(f"nclient-{mode}"), self.ns(f"node-{mode}")
            for ns in (client, node):
                sh("ip", "netns", "add", ns)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "eth0", "netns", node)
            sh("ip", "link", "add", "pod0", "netns", node, "type", "veth", "peer", "name", f"n{k}", "netns", pod)
            sh("ip", "-n", client, "addr", "add", f"10.78.{k}.2/24", "dev", "eth0")
            sh("ip", "-n", node, "addr", "add", f"10.78.{k}.1/24", "dev", "eth0")
            sh("ip", "-n", node, "addr", "add", f"10.79.{k}.1/24", "dev", "pod0")
            sh("ip", "-n", pod, "addr", "add", f"10.79.{k}.2/24", "dev", f"n{k}")
            for ns, dev in ((client, "eth0"), (node, "eth0"), (node, "pod0"), (pod, f"n{k}")):
                sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", pod, "route", "add", f"10.78.{k}.0/24", "via", f"10.79.{k}.1")
            sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1",
               "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")
        # ferry: a NodePort Service, endpoints on this node, TC on eth0.
        k = NODEPORT_MODES["ferry"]
        folder = self.tmp / "manifests-nodeport"
        folder.mkdir()
        slices = "".join(
            f"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: np-{e}, namespace: bench, labels: {{kubernetes.io/service-name: np}}}}\n"
            f"addressType: IPv4\nports: [{{name: http, port: {PORTS[e]}, protocol: TCP}}]\n"
            f"endpoints: [{{addresses: [10.79.{k}.2], nodeName: node, conditions: {{ready: true}}}}]\n"
            for e in ("a", "b"))
        (folder / "np.yaml").write_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: np, namespace: bench}\n"
            "spec: {type: NodePort, clusterIP: 10.96.250.1, externalTrafficPolicy: Local, "
            f"ports: [{{name: http, port: 80, targetPort: 8080, nodePort: {NODEPORT}, protocol: TCP}}]}}\n" + slices)
        cgroup = Path(f"{self.cgroup}-np")
        cgroup.mkdir()
        self.spawn("node-ferry", "ferry-nodeport", [
            self.ferry, "run", "--manifests", folder, "--l4", "--node-name", "node",
            "--cgroup-path", cgroup, "--bpf-pin-path", self.mounts / "bpf" / "ferry-np",
            "--devices", "eth0", "--http-addr", "127.0.0.1:18080", "--https-addr", "127.0.0.1:18443",
            "--admin-addr", "127.0.0.1:10254"])
        # iptables: kube-proxy's NodePort path for a Local-policy Service with local endpoints.
        k = NODEPORT_MODES["iptables"]
        sh("ip", "netns", "exec", self.ns("node-iptables"), "iptables-restore", input="\n".join([
            "*nat", ":KUBE-NODEPORTS - [0:0]", ":KUBE-SVL-NP - [0:0]",
            ":KUBE-SEP-NP-a - [0:0]", ":KUBE-SEP-NP-b - [0:0]",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
            f"-A KUBE-NODEPORTS -p tcp -m tcp --dport {NODEPORT} -j KUBE-SVL-NP",
            "-A KUBE-SVL-NP -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-NP-a",
            "-A KUBE-SVL-NP -j KUBE-SEP-NP-b",
            f"-A KUBE-SEP-NP-a -p tcp -m tcp -j DNAT --to-destination 10.79.{k}.2:{PORTS['a']}",
            f"-A KUBE-SEP-NP-b -p tcp -m tcp -j DNAT --to-destination 10.79.{k}.2:{PORTS['b']}",
            "COMMIT", ""]))
        for mode in NODEPORT_MODES:
            self.wait_nodeport(mode)

    def nodeport_url(self, mode):
        return f"10.78.{NODEPORT_MODES[mode]}.1:{NODEPORT}"

    def wait_nodeport(self, mode, timeout=30):
        deadline = time.monotonic() + timeout
        seen = set()
        while time.monotonic() < deadline and seen != {"a", "b"}:
            out = sh("ip", "netns", "exec", self.ns(f"nclient-{mode}"), self.ferry, "probe", "tcp",
                     self.nodeport_url(mode), "--count", "10", check=False)
            seen |= {json.loads(l).get("backend") for l in out.splitlines() if json.loads(l).get("ok")}
            time.sleep(0.1)
        if seen != {"a", "b"}:
            log = (self.tmp / "ferry-nodeport.log").read_text()[-2000:]
            raise SystemExit(f"NodePort via {mode}: backends seen {seen}, not a and b\n{log}")

    # --- measuring ------------------------------------------------------------------------

    def wrk(self, mode, seconds, close, nodeport=False):
        lua = self.tmp / "wrk.lua"
        lua.write_text(WRK_LUA)
        argv = ["wrk", "-t2", "-c50", f"-d{seconds}s", "--timeout", "5s", "-s", lua]
        if close:
            argv += ["-H", "Connection: close"]
        if nodeport:
            out = sh("ip", "netns", "exec", self.ns(f"nclient-{mode}"), *argv, f"http://{self.nodeport_url(mode)}/")
        else:
            out = sh(*self.in_client(mode, argv + [f"http://{cluster_ip(mode, 0)}:80/"]))
        return wrk_figures(out)

    def connect_ms(self, mode, count, nodeport=False):
        if nodeport:
            out = sh("ip", "netns", "exec", self.ns(f"nclient-{mode}"), self.ferry, "probe", "tcp",
                     self.nodeport_url(mode), "--count", count)
        else:
            out = sh(*self.in_client(mode, [self.ferry, "probe", "tcp", f"{cluster_ip(mode, 0)}:80",
                                            "--count", count]))
        rows = [json.loads(l) for l in out.splitlines()]
        failed = sum(1 for r in rows if not r.get("ok"))
        ms = sorted(r["connect_ms"] for r in rows if r.get("ok"))
        return ms, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ferry", required=True)
    parser.add_argument("--services", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10_000])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--updates", type=int, default=5, help="endpoint changes timed at the largest size")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default=f"{datetime.date.today().isoformat()}-{platform.node()}-l4")
    args = parser.parse_args()

    net = Net(args.ferry)
    results = []
    try:
        net.up()
        for n in args.services:
            programmed = net.configure(n)
            for mode, seconds in programmed.items():
                print(f"l4 {n:6} services {mode:9} programmed and serving after {seconds:.2f} s", file=sys.stderr)
                results.append(dict(kind="program", services=n, mode=mode, seconds=seconds))
            for rep in range(args.reps):
                for mode in MODES:  # interleaved
                    for close in (False, True):
                        m = net.wrk(mode, args.seconds, close)
                        results.append(dict(kind="newconn" if close else "keepalive", services=n, mode=mode,
                                            rep=rep, **m))
                        print(f"l4 {n:6} {mode:9} {'newconn' if close else 'keepalive':9} rep {rep}: "
                              f"{m['rps']:8.0f} req/s p99 {m['p99_ms']:.2f} ms errors {m['errors']}",
                              file=sys.stderr)
                    ms, failed = net.connect_ms(mode, args.connects)
                    results.append(dict(kind="connect", services=n, mode=mode, rep=rep, ms=ms, failed=failed))
            if n == max(args.services):
                for u in range(args.updates):
                    took = net.configure(n, changed=(u % 2 == 0))
                    for mode, seconds in took.items():
                        results.append(dict(kind="update", services=n, mode=mode, rep=u, seconds=seconds))
                    print(f"l4 {n:6} update {u}: " + ", ".join(f"{m} {s * 1e3:.0f} ms" for m, s in took.items()),
                          file=sys.stderr)
        net.nodeport_up()
        for rep in range(args.reps):
            for mode in NODEPORT_MODES:
                for close in (False, True):
                    m = net.wrk(mode, args.seconds, close, nodeport=True)
                    results.append(dict(kind="np-newconn" if close else "np-keepalive", mode=mode, rep=rep, **m))
                    print(f"l4 nodeport {mode:9} {'newconn' if close else 'keepalive':9} rep {rep}: "
                          f"{m['rps']:8.0f} req/s p99 {m['p99_ms']:.2f} ms errors {m['errors']}", file=sys.stderr)
                ms, failed = net.connect_ms(mode, args.connects, nodeport=True)
                results.append(dict(kind="np-connect", mode=mode, rep=rep, ms=ms, failed=failed))
    finally:
        net.down()

    text = report(args, results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    print(text)
    errors = sum(r.get("errors", 0) + r.get("failed", 0) for r in results)
    if errors:
        raise SystemExit(f"{errors} requests or connects failed")


def report(args, results):
    pick = lambda **kw: [r for r in results if all(r.get(k) == v for k, v in kw.items())]
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, {platform.release()}"
    columns = ("keep-alive req/s | p99 ms | new-conn req/s | p50 ms | p99 ms | connect p50 ms | "
               "connect p99 ms | vs iptables (new-conn) | failed |")

    def row(prefix, mode, **where):
        """One mode's figures: keep-alive and new-connection runs, connects, vs iptables."""
        ka, nc = pick(kind=f"{prefix}keepalive", mode=mode, **where), pick(kind=f"{prefix}newconn", mode=mode, **where)
        connects = pick(kind=f"{prefix}connect", mode=mode, **where)
        ms = sorted(x for r in connects for x in r["ms"])
        failed = sum(r["errors"] for r in ka + nc) + sum(r["failed"] for r in connects)
        iptables = median(pick(kind=f"{prefix}newconn", mode="iptables", **where), "rps")
        vs = f"{median(nc, 'rps') / iptables:.2f}" if iptables and mode != "iptables" else ""
        return (f"{median(ka, 'rps'):,.0f} | {median(ka, 'p99_ms'):.2f} | {median(nc, 'rps'):,.0f} | "
                f"{median(nc, 'p50_ms'):.2f} | {median(nc, 'p99_ms'):.2f} | {percentile(ms, 50):.3f} | "
                f"{percentile(ms, 99):.3f} | {vs} | {failed} |")

    lines = [
        f"# ferry's L4 path vs. kube-proxy's iptables and nftables rules — {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine}. {sh('iptables', '--version').strip()}; {sh('nft', '--version').strip()}.",
        "ClusterIP Services with two endpoints each; wrk -t2 -c50 from a client namespace per mode to "
        "echo backends in a pod namespace over a veth; ferry by socket LB (the client in ferry's cgroup), "
        "the others by kube-proxy-shaped DNAT rules. "
        f"{args.seconds} s per run, {args.reps} interleaved repetitions, medians; connect latency from "
        f"{args.connects} `ferry probe` connects per repetition.",
        "",
        "| services | mode | " + columns,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.services:
        lines += [f"| {n:,} | {mode} | " + row("", mode, services=n) for mode in MODES]
    lines += ["", "## NodePort", "",
              "A client namespace connects to the node's address and NodePort; the node forwards to the "
              "backends in the pod namespace. The Service has `externalTrafficPolicy: Local` with its "
              "endpoints on the node, so both modes only DNAT: ferry with its TC programs on the node's "
              "eth0, iptables with kube-proxy's `PREROUTING` → `KUBE-NODEPORTS` → `KUBE-SVL` → `KUBE-SEP` "
              "chains (and conntrack for the replies).",
              "",
              "| mode | " + columns,
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {mode} | " + row("np-", mode) for mode in NODEPORT_MODES]
    lines += ["", "## Programming and updates", "",
              "Time until a client reaches the expected endpoints: for the whole set, from start (ferry: "
              "process start, reading and translating the manifests, loading maps; iptables: "
              "`iptables-restore` of the table; nftables: `nft -f` of the table); for an update, one "
              "Service's endpoints changed (ferry: its manifest file rewritten, `--reload-debounce 1ms`; "
              "iptables: a full `iptables-restore`, as kube-proxy's full sync; nftables: one transaction "
              "rewriting that Service's chains, as kube-proxy's nftables mode).",
              "",
              "| services | mode | programmed in s | update p50 ms | update max ms |",
              "|---:|---|---:|---:|---:|"]
    for n in args.services:
        for mode in MODES:
            prog = pick(kind="program", services=n, mode=mode)
            upd = sorted(r["seconds"] * 1e3 for r in pick(kind="update", services=n, mode=mode))
            lines.append(f"| {n:,} | {mode} | {prog[0]['seconds']:.2f} | "
                         f"{(f'{percentile(upd, 50):.0f}' if upd else '-')} | {(f'{upd[-1]:.0f}' if upd else '-')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
