//! The L4 path in the real kernel: real eBPF programs, attached by real `ferry` processes, in
//! network namespaces and a child cgroup this test creates and removes.
//!
//! ```text
//!   client 10.10.0.2 ─┐                          (lan: a bridge)
//!   node1 10.10.0.11 ─┼─ br0 ─┬─ node2 10.10.0.12
//!     └─ pod1 10.244.1.2      └─ pod2 10.244.2.2
//! ```
//!
//! Each node runs `ferry run --manifests … --l4` with its node name; socket-LB clients run in a
//! child cgroup given to node1's ferry. Needs root and BPF: CI has both; without them the
//! tests fail saying so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        if is_root() {
            ""
        } else {
            "\nthe L4 tests need root (CI runs them as root)"
        }
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether we run as root, for a clear message when not.
fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// One test's namespaces, cgroup, pinned maps and processes; all removed when dropped.
struct Topology {
    id: String,
    dir: tempfile::TempDir,
    /// `/run/ferry-test-<id>`: a cgroup2 view and a BPF filesystem mounted for this test.
    /// (`ip netns exec` gives commands their own /sys, so /sys/fs/cgroup and /sys/fs/bpf are
    /// not what ferry would see inside the namespace.)
    mounts: PathBuf,
    cgroup: PathBuf,
    children: Vec<(String, Child)>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  externalTrafficPolicy: Cluster
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
  - {name: dns, port: 53, targetPort: 5353, nodePort: 30053, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
endpoints:
- {addresses: [10.244.1.2], nodeName: node1, conditions: {ready: true}}
- {addresses: [10.244.2.2], nodeName: node2, conditions: {ready: true}}
"#;

/// A Service `name` on `ip` with the given spec lines and endpoints (`node1` → pod1, …).
fn service(name: &str, ip: &str, spec: &str, endpoints: &[&str]) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|n| {
            let pod = if *n == "node1" {
                "10.244.1.2"
            } else {
                "10.244.2.2"
            };
            format!("- {{addresses: [{pod}], nodeName: {n}, conditions: {{ready: true}}}}\n")
        })
        .collect();
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  clusterIP: {ip}\n{spec}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  labels: {{kubernetes.io/service-name: {name}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{}",
        if endpoints.is_empty() {
            " []\n".to_owned()
        } else {
            endpoints
        }
    )
}

fn manifests(extra: &str) -> String {
    format!("{WEB}{extra}")
}

impl Topology {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.id)
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip"];
        all.extend(args);
        run(&all);
    }

    fn exec(&self, ns: &str, args: &[&str]) -> String {
        let ns = self.ns(ns);
        let mut all = vec!["ip", "netns", "exec", ns.as_str()];
        all.extend(args);
        run(&all)
    }

    /// Builds the network, starts backends in the pods and ferry on both nodes.
    fn new(extra_manifests: &str) -> Topology {
        assert!(
            is_root(),
            "the L4 tests need root (for namespaces and BPF); CI runs as root"
        );
        let id = format!(
            "f{}{}-",
            std::process::id() % 10000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mounts = PathBuf::from(format!("/run/ferry-test-{}", id.trim_end_matches('-')));
        for (fs, dir) in [("cgroup2", "cgroup2"), ("bpf", "bpf")] {
            let at = mounts.join(dir);
            std::fs::create_dir_all(&at).unwrap();
            run(&["mount", "-t", fs, fs, at.to_str().unwrap()]);
        }
        // A child of the cgroup v2 hierarchy (the same one /sys/fs/cgroup shows), never the root.
        let cgroup = mounts
            .join("cgroup2")
            .join(format!("ferry-test-{}", id.trim_end_matches('-')));
        let mut t = Topology {
            id,
            dir: tempfile::tempdir().unwrap(),
            mounts,
            cgroup,
            children: Vec::new(),
        };
        for ns in ["lan", "client", "node1", "node2", "pod1", "pod2"] {
            t.ip(&["netns", "add", &t.ns(ns)]);
            t.exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        let (lan, client, n1, n2, p1, p2) = (
            t.ns("lan"),
            t.ns("client"),
            t.ns("node1"),
            t.ns("node2"),
            t.ns("pod1"),
            t.ns("pod2"),
        );
        t.exec("lan", &["ip", "link", "add", "br0", "type", "bridge"]);
        t.exec("lan", &["ip", "link", "set", "br0", "up"]);
        for (ns, peer, addr) in [
            (&client, "lc", "10.10.0.2/24"),
            (&n1, "l1", "10.10.0.11/24"),
            (&n2, "l2", "10.10.0.12/24"),
        ] {
            t.ip(&[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns",
                &lan,
            ]);
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &lan, "link", "set", peer, "master", "br0", "up"]);
        }
        for (pod, node, host_side, pod_addr, gw) in [
            (&p1, &n1, "10.244.1.1/24", "10.244.1.2/24", "10.244.1.1"),
            (&p2, &n2, "10.244.2.1/24", "10.244.2.2/24", "10.244.2.1"),
        ] {
            t.ip(&[
                "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name", "pod0",
                "netns", node,
            ]);
            run(&["ip", "-n", pod, "addr", "add", pod_addr, "dev", "eth0"]);
            run(&["ip", "-n", pod, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", pod, "route", "add", "default", "via", gw]);
            run(&["ip", "-n", node, "addr", "add", host_side, "dev", "pod0"]);
            run(&["ip", "-n", node, "link", "set", "pod0", "up"]);
        }
        run(&[
            "ip",
            "-n",
            &n1,
            "route",
            "add",
            "10.244.2.0/24",
            "via",
            "10.10.0.12",
        ]);
        run(&[
            "ip",
            "-n",
            &n2,
            "route",
            "add",
            "10.244.1.0/24",
            "via",
            "10.10.0.11",
        ]);
        for ns in ["node1", "node2"] {
            t.exec(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.eth0.rp_filter=0",
                    "net.ipv4.conf.all.send_redirects=0",
                ],
            );
        }
        // A connect that is not redirected must not leave the machine (nor go anywhere).
        for ns in [&client, &n1, &n2] {
            run(&["ip", "-n", ns, "route", "add", "blackhole", "10.96.0.0/16"]);
        }
        std::fs::create_dir_all(&t.cgroup).unwrap();
        for (pod, name, ip) in [
            ("pod1", "pod1", "10.244.1.2"),
            ("pod2", "pod2", "10.244.2.2"),
        ] {
            t.spawn(
                pod,
                &format!("{name}-http"),
                &["backend", "--listen", &format!("{ip}:8080"), "--name", name],
            );
            t.spawn(
                pod,
                &format!("{name}-udp"),
                &[
                    "backend",
                    "--udp",
                    "--listen",
                    &format!("{ip}:5353"),
                    "--name",
                    name,
                ],
            );
        }
        for node in ["node1", "node2"] {
            t.write_manifests(node, &manifests(extra_manifests));
            t.start_ferry(node);
        }
        for node in ["node1", "node2"] {
            t.wait(&format!("ferry on {node} is ready"), || {
                Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &t.ns(node),
                        "curl",
                        "-sf",
                        "http://127.0.0.1:10254/readyz",
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        }
        t
    }

    fn pins(&self, node: &str) -> PathBuf {
        self.mounts.join("bpf").join(node)
    }

    fn write_manifests(&self, node: &str, text: &str) {
        let dir = self.dir.path().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        // Written aside and renamed in, so ferry never reads half a file.
        let staged = dir.join(".services.yaml.new");
        std::fs::File::create(&staged)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        std::fs::rename(&staged, dir.join("services.yaml")).unwrap();
    }

    /// Starts ferry on `node` (manifests mode, the L4 path on), as process `ferry-<node>`.
    fn start_ferry(&mut self, node: &str) {
        let dir = self.dir.path().join(node);
        let cgroup = self.cgroup.join(node);
        std::fs::create_dir_all(&cgroup).unwrap();
        let pins = self.pins(node);
        let args = [
            "run",
            "--manifests",
            dir.to_str().unwrap(),
            "--l4",
            "--node-name",
            node,
            "--devices",
            "eth0",
            "--cgroup-path",
            cgroup.to_str().unwrap(),
            "--bpf-pin-path",
            pins.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:18080",
            "--https-addr",
            "127.0.0.1:18443",
            "--admin-addr",
            "127.0.0.1:10254",
            "--reload-debounce",
            "50ms",
        ];
        self.spawn(node, &format!("ferry-{node}"), &args);
    }

    fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "setpriv"])
            .arg(format!("--bounding-set=-all,{}", capabilities()))
            .args(["--inh-caps=-all", "--", FERRY])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_owned(), child));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits for `condition` with bounded patience; on failure shows the nodes' logs.
    fn wait(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if condition() {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        panic!(
            "not within 15s: {what}\n--- ferry on node1:\n{}\n--- ferry on node2:\n{}",
            self.log("ferry-node1"),
            self.log("ferry-node2")
        );
    }

    /// Runs `ferry probe` in `ns`; in node1's socket-LB cgroup when `socket_lb`.
    fn probe(&self, ns: &str, socket_lb: bool, args: &[&str]) -> Vec<Value> {
        let mut command = if socket_lb {
            let cgroup = self.cgroup.join("node1").join("cgroup.procs");
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("echo $$ > {} && exec \"$@\"", cgroup.display()))
                .arg("sh");
            c
        } else {
            Command::new("env")
        };
        let out = command
            .args(["ip", "netns", "exec", &self.ns(ns), FERRY, "probe"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn dump(&self, node: &str) -> String {
        run(&[
            FERRY,
            "l4",
            "dump",
            "--bpf-pin-path",
            self.pins(node).to_str().unwrap(),
        ])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Only what this test started, by PID.
        for (_, child) in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for (_, child) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::park_timeout(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in ["client", "node1", "node2", "pod1", "pod2", "lan"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .output();
        }
        for node in ["node1", "node2"] {
            let _ = Command::new(FERRY)
                .args(["l4", "cleanup", "--bpf-pin-path"])
                .arg(self.pins(node))
                .output();
            let _ = std::fs::remove_dir(self.cgroup.join(node));
        }
        let _ = std::fs::remove_dir(&self.cgroup);
        for dir in ["bpf", "cgroup2"] {
            let _ = Command::new("umount").arg(self.mounts.join(dir)).output();
            let _ = std::fs::remove_dir(self.mounts.join(dir));
        }
        let _ = std::fs::remove_dir(&self.mounts);
    }
}

fn backends(results: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in results {
        assert_eq!(r["ok"], true, "a probe failed: {r}");
        *seen
            .entry(r["backend"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    seen
}

fn ip_of(addr: &Value) -> &str {
    addr.as_str().unwrap().rsplit_once(':').unwrap().0
}

#[test]
fn cluster_ip_tcp_and_udp_reach_every_backend_and_look_like_the_cluster_ip() {
    let t = Topology::new("");
    t.wait("web is programmed", || {
        t.dump("node1").contains("10.96.0.10:80/TCP service=")
    });
    let tcp = t.probe("node1", true, &["tcp", "10.96.0.10:80", "--count", "40"]);
    let seen = backends(&tcp);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["pod1", "pod2"],
        "{seen:?}"
    );
    assert!(
        tcp.iter().all(|r| r["peer"] == "10.96.0.10:80"),
        "getpeername shows the ClusterIP: {tcp:?}"
    );
    for connected in [false, true] {
        let mut args = vec!["udp", "10.96.0.10:53", "--count", "30"];
        if connected {
            args.push("--connect");
        }
        let udp = t.probe("node1", true, &args);
        let seen = backends(&udp);
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            ["pod1", "pod2"],
            "connected={connected}: {seen:?}"
        );
        assert!(
            udp.iter().all(|r| r["peer"] == "10.96.0.10:53"),
            "replies come from the ClusterIP: {udp:?}"
        );
    }
    // Outside the cgroup nothing is translated: the blackhole route answers.
    let outside = t.probe("node1", false, &["tcp", "10.96.0.10:80"]);
    assert_eq!(outside[0]["ok"], false, "{outside:?}");
}

#[test]
fn node_ports_under_cluster_and_local_policies() {
    let local = service(
        "local",
        "10.96.0.11",
        "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 32000\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]",
        &["node1", "node2"],
    );
    let only_node2 = service(
        "remote-only",
        "10.96.0.14",
        "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 32001\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30084}]",
        &["node2"],
    );
    let t = Topology::new(&format!("{local}{only_node2}"));
    t.wait("NodePorts are programmed", || {
        t.dump("node1").contains("10.10.0.11:30084/TCP")
    });

    // Cluster: both backends from either node; the remote one sees the node (SNAT), the local
    // one the client.
    for node_ip in ["10.10.0.11", "10.10.0.12"] {
        let results = t.probe(
            "client",
            false,
            &["tcp", &format!("{node_ip}:30080"), "--count", "30"],
        );
        assert_eq!(backends(&results).len(), 2, "{node_ip}: {results:?}");
        for r in &results {
            let via_self = (r["backend"] == "pod1") == (node_ip == "10.10.0.11");
            let expected = if via_self { "10.10.0.2" } else { node_ip };
            assert_eq!(ip_of(&r["client"]), expected, "{r}");
            assert_eq!(r["peer"].as_str().unwrap(), format!("{node_ip}:30080"));
        }
    }
    // UDP NodePort too.
    let udp = t.probe(
        "client",
        false,
        &["udp", "10.10.0.11:30053", "--count", "20"],
    );
    assert_eq!(backends(&udp).len(), 2, "{udp:?}");
    assert!(
        udp.iter().all(|r| r["peer"] == "10.10.0.11:30053"),
        "{udp:?}"
    );

    // Local: only the node's own backend, and it sees the real client.
    for (node_ip, pod) in [("10.10.0.11", "pod1"), ("10.10.0.12", "pod2")] {
        let results = t.probe(
            "client",
            false,
            &["tcp", &format!("{node_ip}:30081"), "--count", "20"],
        );
        assert_eq!(
            backends(&results).keys().collect::<Vec<_>>(),
            [pod],
            "{results:?}"
        );
        assert!(
            results.iter().all(|r| ip_of(&r["client"]) == "10.10.0.2"),
            "{results:?}"
        );
    }
    // Local, and this node has no backend: dropped (the connect times out).
    let dropped = t.probe("client", false, &["tcp", "10.10.0.11:30084"]);
    assert_eq!(dropped[0]["ok"], false, "{dropped:?}");
    assert_eq!(dropped[0]["kind"], "TimedOut", "{dropped:?}");
    let ok = t.probe("client", false, &["tcp", "10.10.0.12:30084"]);
    assert_eq!(backends(&ok).keys().collect::<Vec<_>>(), ["pod2"]);

    // healthCheckNodePort, as kube-proxy answers it.
    let health = |port: &str| {
        t.exec(
            "client",
            &["curl", "-s", "-i", &format!("http://10.10.0.11:{port}/")],
        )
    };
    let yes = health("32000");
    assert!(yes.starts_with("HTTP/1.1 200"), "{yes}");
    assert!(
        yes.to_ascii_lowercase()
            .contains("x-load-balancing-endpoint-weight: 1"),
        "{yes}"
    );
    assert!(
        yes.contains(r#""localEndpoints":1"#) && yes.contains(r#""name":"local""#),
        "{yes}"
    );
    let no = health("32001");
    assert!(no.starts_with("HTTP/1.1 503"), "{no}");
    assert!(
        no.contains(r#""localEndpoints":0"#) && no.contains(r#""serviceProxyHealthy":true"#),
        "{no}"
    );
}

#[test]
fn client_ip_affinity_sticks_and_expires() {
    let sticky = service(
        "sticky",
        "10.96.0.12",
        "  type: NodePort\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 1}}\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30082}]",
        &["node1", "node2"],
    );
    let t = Topology::new(&sticky);
    t.wait("sticky is programmed", || {
        t.dump("node1").contains("affinity=1s")
    });
    // Socket LB: one client (network namespace) keeps its backend over 50 connections.
    let results = t.probe("node1", true, &["tcp", "10.96.0.12:80", "--count", "50"]);
    assert_eq!(backends(&results).len(), 1, "{results:?}");
    // TC (NodePort): one client address keeps its backend.
    let results = t.probe(
        "client",
        false,
        &["tcp", "10.10.0.11:30082", "--count", "50"],
    );
    assert_eq!(backends(&results).len(), 1, "{results:?}");
    // Once the timeout passes without use, the choice is made again: over twelve spaced-out
    // rounds both backends turn up (all twelve alike: 1 chance in 2048).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        std::thread::park_timeout(Duration::from_millis(1300));
        let r = t.probe("node1", true, &["tcp", "10.96.0.12:80"]);
        seen.extend(backends(&r).into_keys());
    }
    assert_eq!(seen.len(), 2, "the affinity expired: {seen:?}");
    // Without affinity the same client spreads.
    let spread = t.probe("node1", true, &["tcp", "10.96.0.10:80", "--count", "30"]);
    assert_eq!(backends(&spread).len(), 2);
}

#[test]
fn endpoint_churn_drops_no_connection_and_removed_backends_get_none() {
    let t = Topology::new("");
    t.wait("web is programmed", || {
        programmed(&t.dump("node1"), "10.96.0.10:80/TCP", 2)
    });
    let out = t.dir.path().join("churn.jsonl");
    let cgroup = t.cgroup.join("node1").join("cgroup.procs");
    let mut client = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec ip netns exec {} {FERRY} probe tcp 10.96.0.10:80 --count 400",
            cgroup.display(),
            t.ns("node1")
        ))
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let lines = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    t.wait("the client is under way", || lines(&out) > 50);
    // pod2 leaves the Service.
    let without_pod2 = WEB.replace(
        "- {addresses: [10.244.2.2], nodeName: node2, conditions: {ready: true}}\n",
        "",
    );
    assert_ne!(without_pod2, WEB);
    t.write_manifests("node1", &without_pod2);
    t.wait("pod2 is removed from the maps", || {
        programmed(&t.dump("node1"), "10.96.0.10:80/TCP", 1)
    });
    let removed_at = lines(&out);
    let _ = client.wait();
    let results: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 400);
    let failed: Vec<&Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(
        failed.is_empty(),
        "connections failed during churn: {failed:?}"
    );
    // Allow the one connection that may have been in flight when the dump was read.
    let late_pod2 = results[removed_at + 1..]
        .iter()
        .filter(|r| r["backend"] == "pod2")
        .count();
    assert_eq!(
        late_pod2,
        0,
        "connections to pod2 after it left ({} checked)",
        results.len() - removed_at - 1
    );
    assert!(
        results[..removed_at].iter().any(|r| r["backend"] == "pod2"),
        "pod2 served before it left"
    );
}

#[test]
fn a_service_without_endpoints_refuses_at_once_and_restarts_reconcile() {
    let empty = service(
        "empty",
        "10.96.0.13",
        "  ports: [{name: http, port: 80, targetPort: 8080}]",
        &[],
    );
    let mut t = Topology::new(&empty);
    t.wait("empty is programmed", || {
        t.dump("node1").contains("10.96.0.13:80/TCP")
    });
    let refused = t.probe("node1", true, &["tcp", "10.96.0.13:80"]);
    assert_eq!(
        refused[0]["kind"], "ConnectionRefused",
        "ECONNREFUSED, not a hang: {refused:?}"
    );

    // Restart node1's ferry: the pinned maps are taken over as they are, not duplicated.
    let before = t.dump("node1");
    let frontends = |dump: &str| {
        dump.lines()
            .filter(|l| l.contains("/TCP service=") || l.contains("/UDP service="))
            .count()
    };
    let (_, mut old) = t
        .children
        .iter()
        .position(|(n, _)| n == "ferry-node1")
        .map(|i| t.children.remove(i))
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    old.wait().unwrap();
    // Stopped: programs detached, maps still pinned.
    assert_eq!(frontends(&t.dump("node1")), frontends(&before));
    let outside = t.probe("node1", true, &["tcp", "10.96.0.10:80"]);
    assert_eq!(outside[0]["ok"], false, "detached on stop: {outside:?}");
    t.start_ferry("node1");
    // The pinned maps serve as soon as the programs attach, before the attach is logged.
    t.wait("node1's ferry is back", || {
        t.log("ferry-node1").contains("L4 path attached")
            && backends_ok(&t.probe("node1", true, &["tcp", "10.96.0.10:80"]))
    });
    let after = t.dump("node1");
    assert_eq!(
        frontends(&after),
        frontends(&before),
        "before:\n{before}\nafter:\n{after}"
    );
    let log = t.log("ferry-node1");
    assert!(
        log.contains("pinned_frontends=") && !log.contains("pinned_frontends=0"),
        "the restart took the pinned maps over: {log}"
    );
}

/// ferry runs with only the capabilities the L4 path says it needs (and the Helm chart
/// grants), plus binding low ports: `setpriv` limits what root keeps.
fn capabilities() -> String {
    ferry_dataplane::l4::CAPABILITIES
        .iter()
        .chain(&["NET_BIND_SERVICE"])
        .map(|c| format!("+{}", c.to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `frontend` is programmed with `backends` backends, according to `ferry l4 dump`.
fn programmed(dump: &str, frontend: &str, backends: usize) -> bool {
    dump.lines().any(|l| {
        l.starts_with(&format!("{frontend} ")) && l.contains(&format!(" backends={backends} "))
    })
}

fn backends_ok(results: &[Value]) -> bool {
    results.iter().all(|r| r["ok"] == true)
}
