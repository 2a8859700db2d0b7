//! The `ferry` binary in manifests mode, as a user runs it: a folder of YAML, real backends,
//! real HTTP. Edits are served; a broken file is reported and changes nothing.

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::{
    Pki, eventually, get, http1_client, https_connect, send, start_backend, tls_connect,
};

/// A ferry process; killed (by its PID) when dropped.
struct Ferry {
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ferry {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A port the OS says is free right now.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start_ferry(dir: &Path, log: PathBuf, args: &[&str]) -> Ferry {
    start_ferry_logging(dir, log, args, "info")
}

/// [`start_ferry`] with the log filter `level`.
fn start_ferry_logging(dir: &Path, log: PathBuf, args: &[&str], level: &str) -> Ferry {
    let addrs = (free_port(), free_port(), free_port());
    spawn_ferry(dir, log, args, level, addrs)
}

/// A ferry on the given HTTP, HTTPS and admin addresses.
fn spawn_ferry(
    dir: &Path,
    log: PathBuf,
    args: &[&str],
    level: &str,
    (http, https, admin): (SocketAddr, SocketAddr, SocketAddr),
) -> Ferry {
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("run")
        .args(args)
        .args([
            "--http-addr",
            &http.to_string(),
            "--https-addr",
            &https.to_string(),
        ])
        .args(["--admin-addr", &admin.to_string()])
        .arg("--manifests")
        .arg(dir)
        .env("FERRY_LOG", level)
        .env("FERRY_RELOAD_DEBOUNCE", "50ms")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ferry starts");
    Ferry {
        child,
        http,
        https,
        admin,
        log,
    }
}

impl Ferry {
    /// Waits for `/readyz`; fails at once, with ferry's log, if the process exits.
    async fn ready(&mut self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ferry exited with {status}:\n{}", self.log());
            }
            if send(&http1_client(), get(self.admin, "x", "/readyz"))
                .await
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ferry not ready in 20s:\n{}",
                self.log()
            );
        }
    }
}

fn manifests(host: &str, backends: &[(&str, SocketAddr)]) -> String {
    let mut yaml = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: {host}\n    http:\n      paths:\n"
    );
    for (name, _) in backends {
        yaml.push_str(&format!(
            "      - {{path: /{name}, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}\n"
        ));
    }
    for (name, addr) in backends {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n\
             ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\nsubsets:\n- addresses: [{{ip: \"{}\"}}]\n  ports: [{{port: {}}}]\n",
            addr.ip(),
            addr.port()
        ));
    }
    yaml
}

/// `ferry_http_active_connections` of a running ferry.
async fn active_connections(ferry: &Ferry) -> i64 {
    const NAME: &str = "ferry_http_active_connections ";
    support::metric_lines(ferry.admin, NAME)
        .await
        .first()
        .and_then(|l| l[NAME.len()..].trim().parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

async fn backend_of(ferry: &Ferry, host: &str, path: &str) -> Option<String> {
    let r = send(&http1_client(), get(ferry.http, host, path))
        .await
        .ok()?;
    (r.status == 200).then(|| r.echo().backend)
}

/// Waits until `host` `path` is answered by `backend`.
async fn serves(ferry: &Ferry, host: &str, path: &str, backend: &str) {
    let what = format!("{host}{path} served by {backend}");
    eventually(&what, || async {
        backend_of(ferry, host, path).await.as_deref() == Some(backend)
    })
    .await;
}

async fn status_of(ferry: &Ferry, host: &str, path: &str) -> Option<u16> {
    send(&http1_client(), get(ferry.http, host, path))
        .await
        .ok()
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_served_and_broken_files_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let (one, two) = (start_backend("one").await, start_backend("two").await);
    let file = dir.join("app.yaml");
    std::fs::write(&file, manifests("app.test", &[("one", one)])).unwrap();
    // A Deployment in the folder, as users keep them side by side: skipped, not an error.
    std::fs::write(
        dir.join("deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
    )
    .unwrap();

    let mut ferry = start_ferry(&dir, tmp.path().join("ferry.log"), &[]);
    ferry.ready().await;
    serves(&ferry, "app.test", "/one", "one").await;

    // An edit: a second route and Service.
    std::fs::write(&file, manifests("app.test", &[("one", one), ("two", two)])).unwrap();
    serves(&ferry, "app.test", "/two", "two").await;

    // A broken file: the error names file, object and field; everything keeps serving.
    let broken =
        manifests("app.test", &[("one", one)]).replace("pathType: Prefix", "pathType: Sometimes");
    std::fs::write(&file, &broken).unwrap();
    let log_has = |needle: &'static str| {
        let ferry = &ferry;
        move || async move { ferry.log().contains(needle) }
    };
    eventually(
        "the error is logged",
        log_has("Ingress default/app: spec.rules[0].http.paths[0].pathType: unsupported value"),
    )
    .await;
    assert!(
        ferry.log().contains("app.yaml"),
        "the file is named: {}",
        ferry.log()
    );
    assert_eq!(
        backend_of(&ferry, "app.test", "/one").await.as_deref(),
        Some("one")
    );
    assert_eq!(
        backend_of(&ferry, "app.test", "/two").await.as_deref(),
        Some("two"),
        "the last good snapshot serves"
    );

    // Fixed again (and a host change): served.
    std::fs::write(&file, manifests("new.test", &[("one", one)])).unwrap();
    serves(&ferry, "new.test", "/one", "one").await;
    assert_eq!(status_of(&ferry, "app.test", "/one").await, Some(404));

    // Metrics tell the story: published, rejected.
    let metrics = send(&http1_client(), get(ferry.admin, "x", "/metrics"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("ferry_snapshot_rebuilds_total{result=\"rejected\"}"),
        "{text}"
    );
    assert!(
        text.contains("ferry_http_requests_total{ingress=\"app\""),
        "{text}"
    );
}

/// `ferry run` on free loopback ports, for runs expected to stop at start.
fn ferry_run() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.args(["run", "--http-addr", &free_port().to_string()]);
    command.args([
        "--https-addr",
        &free_port().to_string(),
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    command
}

#[test]
fn bad_manifests_at_start_exit_with_every_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  rules:\n  - host: \"*.*.x\"\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("b.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: [\n",
    )
    .unwrap();
    let out = ferry_run()
        .arg("--manifests")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a.yaml: document 1: Ingress default/a: spec.rules[0].host"),
        "{stderr}"
    );
    assert!(
        stderr.contains("b.yaml: document 1: not valid YAML"),
        "{stderr}"
    );
}

#[test]
fn without_a_source_ferry_says_what_to_pass() {
    // No manifests folder and no cluster to be found: cluster mode says what to pass.
    let home = tempfile::tempdir().unwrap();
    let out = ferry_run()
        .env_remove("FERRY_MANIFESTS")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pass --kubeconfig PATH, or --manifests DIR"),
        "{stderr}"
    );
}

fn tls_site(backend: SocketAddr) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: secure}}\nspec:\n  ingressClassName: ferry\n  tls: [{{hosts: [secure.test], secretName: secure-tls}}]\n  rules:\n  - host: secure.test\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n\
         ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets: [{{addresses: [{{ip: \"{}\"}}], ports: [{{port: {}}}]}}]\n",
        backend.ip(),
        backend.port()
    )
}

fn tls_secret(chain: &str, key: &str) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: secure-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(chain),
        indent(key)
    )
}

/// cert-manager renews a certificate: the Secret changes under a running ferry. New handshakes
/// get the new certificate, an open connection keeps working, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_served_without_dropping_a_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let pki = Pki::default();
    let (old, new) = (pki.issue(&["secure.test"]), pki.issue(&["secure.test"]));
    let backend = start_backend("web").await;
    std::fs::write(dir.join("site.yaml"), tls_site(backend)).unwrap();
    std::fs::write(
        dir.join("secret.yaml"),
        tls_secret(&old.chain_pem, &old.key_pem),
    )
    .unwrap();
    let mut ferry = start_ferry(&dir, tmp.path().join("ferry.log"), &[]);
    ferry.ready().await;
    let https = ferry.https;

    // A client holding one keep-alive TLS connection.
    let (held, leaf) = https_connect(https, "secure.test", &["http/1.1"])
        .await
        .unwrap();
    assert_eq!(leaf, old.leaf_der);
    assert_eq!(
        held.get("secure.test", "/before").await.unwrap().status,
        200
    );

    // Clients hammering: one over a long-lived h2 connection, one with a new handshake each time.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut hammers = Vec::new();
    for fresh in [false, true] {
        let (stop, ok) = (stop.clone(), ok.clone());
        hammers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut conn = https_connect(https, "secure.test", &["h2"])
                .await
                .unwrap()
                .0;
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    match https_connect(https, "secure.test", &["h2", "http/1.1"]).await {
                        Ok((c, _)) => conn = c,
                        Err(e) => {
                            failures.push(format!("handshake: {e}"));
                            continue;
                        }
                    }
                }
                match conn.get("secure.test", "/hammer").await {
                    Ok(r) if r.status == 200 => drop(ok.fetch_add(1, Ordering::Relaxed)),
                    Ok(r) => failures.push(format!("status {}", r.status)),
                    Err(e) => failures.push(format!("request: {e}")),
                }
            }
            failures
        }));
    }

    // The renewal, written the way kubelet and editors do: a new file renamed into place.
    let staged = dir.join(".secret.yaml.new");
    std::fs::write(&staged, tls_secret(&new.chain_pem, &new.key_pem)).unwrap();
    let changed = std::time::Instant::now();
    std::fs::rename(&staged, dir.join("secret.yaml")).unwrap();
    eventually("new handshakes get the renewed certificate", || async {
        tls_connect(https, Some("secure.test"), &[])
            .await
            .is_ok_and(|(_, leaf)| leaf == new.leaf_der)
    })
    .await;
    // Measured, not asserted (timings belong to benchmarks): ferry's debounce here is 50 ms.
    eprintln!(
        "renewed certificate served {:?} after the change",
        changed.elapsed()
    );

    assert_eq!(
        held.get("secure.test", "/after").await.unwrap().status,
        200,
        "the open connection keeps working"
    );
    let before = ok.load(Ordering::Relaxed);
    eventually("the hammers keep going after the change", || {
        let ok = ok.clone();
        async move { ok.load(Ordering::Relaxed) > before + 20 }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for h in hammers {
        failures.extend(h.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
}

/// SIGTERM under load: /readyz turns 503 at once, the listeners keep accepting for the
/// shutdown delay, then close; a request in flight finishes; ferry exits 0 once drained,
/// without waiting out the drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    use ferry_dataplane::backend::Backend;
    use std::time::Duration;

    let slow = support::start(Backend::new("slow").with_delay(Duration::from_secs(3))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        manifests("drain.test", &[("slow", slow)]),
    )
    .unwrap();
    let log = dir.path().join("ferry.log");
    let mut ferry = start_ferry(
        dir.path(),
        log,
        &["--shutdown-delay", "1500ms", "--drain-timeout", "60s"],
    );
    ferry.ready().await;
    serves(&ferry, "drain.test", "/slow", "slow").await;

    // Requests in flight on their own connections when SIGTERM comes.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let addr = ferry.http;
            tokio::spawn(async move {
                send(&http1_client(), get(addr, "drain.test", "/slow"))
                    .await
                    .map(|r| r.status)
            })
        })
        .collect();
    eventually("the four requests are in flight", || async {
        active_connections(&ferry).await >= 4
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(ferry.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let signalled = std::time::Instant::now();

    eventually("/readyz answers 503 after SIGTERM", || async {
        send(&http1_client(), get(ferry.admin, "x", "/readyz"))
            .await
            .is_ok_and(|r| r.status == 503)
    })
    .await;
    // Within the shutdown delay: new connections are still accepted and served.
    let sent_after = signalled.elapsed();
    let during_delay = send(&http1_client(), get(ferry.http, "drain.test", "/slow")).await;
    assert!(
        sent_after < Duration::from_millis(1500),
        "the request must be sent within the delay; it was sent after {sent_after:?}"
    );
    assert_eq!(
        during_delay.map(|r| r.status).ok(),
        Some(200),
        "a connection opened during the shutdown delay is served:\n{}",
        ferry.log()
    );
    // After it: the listener is closed.
    eventually("the listener closes after the delay", || async {
        tokio::net::TcpStream::connect(ferry.http).await.is_err()
    })
    .await;
    for request in in_flight {
        let status = request.await.unwrap();
        assert_eq!(
            status.ok(),
            Some(200),
            "in-flight request:\n{}",
            ferry.log()
        );
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = ferry.child.wait().unwrap();
        (status, ferry.log())
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "exit status {}:\n{}",
        status.0,
        status.1
    );
    assert!(
        status.1.contains("drained"),
        "ferry exits once drained, not after the 60s drain timeout:\n{}",
        status.1
    );
}

/// Private keys never reach the logs (even at trace level, even when a Secret is broken) nor
/// the admin server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_are_never_logged_or_exposed() {
    let backend = start_backend("web").await;
    let pki = Pki::default();
    let good = pki.issue(&["secure.test"]);
    let other = pki.issue(&["bad.test"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yaml"), tls_site(backend)).unwrap();
    std::fs::write(
        dir.path().join("secret.yaml"),
        tls_secret(&good.chain_pem, &good.key_pem),
    )
    .unwrap();
    // A Secret whose key does not match its certificate, used by another Ingress.
    let bad = tls_secret(&pki.issue(&["bad.test"]).chain_pem, &other.key_pem)
        .replace("name: secure-tls", "name: bad-tls");
    let bad_site = tls_site(backend)
        .replace("secure", "bad")
        .replace("name: web", "name: web2");
    std::fs::write(dir.path().join("bad.yaml"), format!("{bad}---\n{bad_site}")).unwrap();
    let log = dir.path().join("ferry.log");
    let mut ferry = start_ferry_logging(dir.path(), log, &[], "trace");
    ferry.ready().await;
    let (_, leaf) = tls_connect(ferry.https, Some("secure.test"), &[])
        .await
        .unwrap();
    assert_eq!(leaf, good.leaf_der, "the good Secret is served");
    let metrics = send(&http1_client(), get(ferry.admin, "x", "/metrics"))
        .await
        .unwrap()
        .body;
    let metrics = String::from_utf8_lossy(&metrics);
    let log = ferry.log();
    assert!(
        log.contains("bad-tls"),
        "the broken Secret is reported:\n{log}"
    );
    // As text, or as the bytes a Debug print of the Secret's data would show.
    assert!(!log.contains("PRIVATE KEY"), "a key header in the log");
    let as_bytes = format!("{:?}", &b"-----BEGIN PRIVATE"[..]);
    assert!(!log.contains(as_bytes.trim_matches(|c| c == '[' || c == ']')));
    for key in [&good.key_pem, &other.key_pem] {
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            let fragment = &line[..line.len().min(24)];
            assert!(
                !log.contains(fragment),
                "key material in the log: {fragment}"
            );
            assert!(!metrics.contains(fragment), "key material in /metrics");
        }
    }
}

/// A binary upgrade under load: a new ferry takes the listening sockets over from the old one
/// (SIGQUIT), the old one drains and exits 0, and no request fails throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_under_load_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let backend = start_backend("web").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        manifests("upgrade.test", &[("web", backend)]),
    )
    .unwrap();
    let socket = dir.path().join("upgrade.sock");
    let socket = socket.to_str().unwrap();
    let args = ["--upgrade-socket", socket, "--drain-timeout", "20s"];
    let mut old = start_ferry(dir.path(), dir.path().join("old.log"), &args);
    old.ready().await;
    serves(&old, "upgrade.test", "/web", "web").await;

    // Load: keep-alive clients and a new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let load: Vec<_> = (0..6)
        .map(|i| {
            let (stop, ok, failed, errors) =
                (stop.clone(), ok.clone(), failed.clone(), errors.clone());
            let addr = old.http;
            tokio::spawn(async move {
                let mut client = http1_client();
                while !stop.load(Ordering::Relaxed) {
                    if i % 2 == 0 {
                        client = http1_client();
                    }
                    match send(&client, get(addr, "upgrade.test", "/web")).await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            let kind = if i % 2 == 0 {
                                "new connection"
                            } else {
                                "keep-alive"
                            };
                            let what = match other {
                                Ok(r) => format!("{kind}: status {}", r.status),
                                Err(e) => format!("{kind}: {e:#}"),
                            };
                            errors.lock().unwrap().push(what);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    eventually("the load runs", || async {
        ok.load(Ordering::Relaxed) >= 100
    })
    .await;

    // The new ferry waits for the sockets; the old one hands them over on SIGQUIT.
    let upgrade_args = [&args[..], &["--upgrade"]].concat();
    let mut new = spawn_ferry(
        dir.path(),
        dir.path().join("new.log"),
        &upgrade_args,
        "info",
        (old.http, old.https, old.admin),
    );
    let socket_path = Path::new(socket);
    eventually("the new ferry waits on the upgrade socket", || async {
        socket_path.exists()
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(old.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT).unwrap();
    new.ready().await;
    let old_status = tokio::task::spawn_blocking(move || {
        let status = old.child.wait().unwrap();
        (status, old.log())
    })
    .await
    .unwrap();
    // Keep the load on the new process alone for a while.
    let after_old = ok.load(Ordering::Relaxed);
    eventually("the new ferry serves the load alone", || async {
        ok.load(Ordering::Relaxed) >= after_old + 500
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert!(
        old_status.0.success(),
        "old ferry: {}\n{}",
        old_status.0,
        old_status.1
    );
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "the load ran: {ok} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {:?}\nnew ferry:\n{}",
        ok + failed,
        errors.lock().unwrap().iter().take(3).collect::<Vec<_>>(),
        new.log()
    );
    assert!(new.log().contains("ferry is serving"), "{}", new.log());
    assert!(
        new.child.try_wait().unwrap().is_none(),
        "the new ferry runs on"
    );
}
