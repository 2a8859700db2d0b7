//! The `ferry` binary in manifests mode, as a user runs it: a folder of YAML, real backends,
//! real HTTP. Edits are served; a broken file is reported and changes nothing.

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::{eventually, get, http1_client, send, start_backend};

/// A ferry process; killed (by its PID) when dropped.
struct Ferry {
    child: Child,
    http: SocketAddr,
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
    let (http, admin) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("run")
        .args(args)
        .args([
            "--http-addr",
            &http.to_string(),
            "--admin-addr",
            &admin.to_string(),
        ])
        .arg("--manifests")
        .arg(dir)
        .env("FERRY_LOG", "info")
        .env("FERRY_RELOAD_DEBOUNCE", "50ms")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ferry starts");
    Ferry {
        child,
        http,
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
    command.args([
        "run",
        "--http-addr",
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
    let out = ferry_run().env_remove("FERRY_MANIFESTS").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --manifests DIR"));
}
