//! Cluster mode: the real kube-rs client over real HTTP against the test API server
//! (`apiserver/`), feeding the real index, translation and data-plane router.

mod apiserver;
#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apiserver::{ApiServer, failures};
use ferry_controller::ControllerConfig;
use ferry_controller::cluster::{self, ClusterConfig, LeaseConfig, StatusConfig};
use ferry_controller::manifests::load_texts;
use ferry_controller::translate::translate;
use ferry_dataplane::{ProxyConfig, Router};
use ferry_model::{Snapshot, SnapshotSink, UpstreamTarget};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::{eventually, get, http1_client, metric_lines, send, start_backend, start_proxy};
use tokio::sync::watch;

const ELECTION_NS: &str = "ferry-system";

/// The fixture set shared with manifests mode: a cluster dump and the quickstart.
fn fixture_files() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files = vec![format!("{root}/controller/tests/fixtures/shop.yaml")];
    for f in [
        "ingress-class.yaml",
        "ingress.yaml",
        "services.yaml",
        "tls.yaml",
    ] {
        files.push(format!("{root}/examples/quickstart/{f}"));
    }
    files
        .into_iter()
        .map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap()))
        .collect()
}

/// A snapshot as comparable text: routes, their targets and HTTPS policy, certificates.
fn describe(s: &Snapshot) -> String {
    let mut lines: Vec<String> = s
        .routes
        .routes()
        .iter()
        .map(|r| {
            let target = match &r.upstream.target {
                UpstreamTarget::Endpoints(e) => {
                    format!("{:?}", e.iter().map(|e| e.addr).collect::<Vec<_>>())
                }
                UpstreamTarget::ExternalName { host, port } => format!("{host}:{port}"),
            };
            let path = r
                .path
                .as_ref()
                .map(|p| format!("{} {p}", p.path_type()))
                .unwrap_or_default();
            format!(
                "route {} {path} ingress={} -> {} {target} redirect={} hsts={:?}",
                r.host, r.ingress, r.upstream.name, r.https.redirect, r.https.hsts
            )
        })
        .collect();
    lines.extend(
        s.certs
            .iter()
            .map(|(host, c)| format!("cert {host} {}", c.secret)),
    );
    lines.sort();
    lines.join("\n")
}

fn manifests_snapshot() -> String {
    let files = fixture_files();
    let loaded = load_texts(
        files
            .iter()
            .map(|(f, t)| (Path::new(f.as_str()), t.as_str())),
    )
    .unwrap();
    let t = translate(&loaded.index, &ControllerConfig::default());
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    describe(&t.snapshot)
}

/// One ferry replica running cluster mode in this process.
struct Replica {
    router: Arc<Router>,
    ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    fn start(server: &ApiServer, port: usize, identity: &str, status: StatusConfig) -> Replica {
        let router = Router::new();
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, shutdown) = watch::channel(false);
        let controller = ControllerConfig {
            debounce: Duration::from_millis(50),
            ..ControllerConfig::default()
        };
        let cluster = ClusterConfig {
            namespace: None,
            lease: LeaseConfig {
                duration: Duration::from_secs(2),
                renew_deadline: Duration::from_millis(1500),
                retry_period: Duration::from_millis(200),
                ..LeaseConfig::new(ELECTION_NS, identity)
            },
            status,
            backoff_max: Duration::from_millis(500),
        };
        let (sink, flag): (Arc<dyn SnapshotSink>, _) = (router.clone(), ready.clone());
        let task = tokio::spawn(cluster::run(
            server.client(port),
            controller,
            cluster,
            sink,
            move || flag.store(true, Ordering::SeqCst),
            shutdown,
        ));
        Replica {
            router,
            ready,
            stop,
            task,
        }
    }

    fn described(&self) -> Option<String> {
        self.router.current().map(|s| describe(&s.snapshot))
    }

    fn generation(&self) -> u64 {
        self.router.current().map_or(0, |s| s.snapshot.generation)
    }

    async fn converges_to(&self, expected: &str) {
        eventually(
            "the cluster snapshot equals the manifests snapshot",
            || async { self.described().as_deref() == Some(expected) },
        )
        .await;
    }

    /// Stops as on SIGTERM (gives up the Lease).
    async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

fn no_status() -> StatusConfig {
    StatusConfig::default()
}

fn assert_authorized(server: &ApiServer) {
    let log = server.requests();
    let refused: Vec<_> = failures(&log)
        .into_iter()
        .filter(|l| l.status == 403)
        .collect();
    assert!(
        refused.is_empty(),
        "requests outside ferry's RBAC rules: {refused:#?}"
    );
}

/// The documents of the fixture set as JSON, in an order given by `salt`.
fn shuffled_objects(salt: u64) -> Vec<serde_json::Value> {
    let mut objects = Vec::new();
    for (_, text) in fixture_files() {
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            match v["kind"].as_str() {
                Some("List") => objects.extend(v["items"].as_array().unwrap().iter().cloned()),
                Some(_) => objects.push(v),
                None => {}
            }
        }
    }
    let hash = |v: &serde_json::Value| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, v["metadata"]["name"].as_str(), v["kind"].as_str()).hash(&mut h);
        h.finish()
    };
    objects.sort_by_key(hash);
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_order_of_changes_converges_to_the_manifests_snapshot() {
    let expected = manifests_snapshot();
    for salt in 0..3u64 {
        let server = ApiServer::start(1, ELECTION_NS).await;
        let replica = Replica::start(&server, 0, "a", no_status());
        for (i, object) in shuffled_objects(salt).into_iter().enumerate() {
            // Noise: a wrong version first, fixed by a later change; a stray object that goes.
            if i % 3 == 0 {
                let mut wrong = object.clone();
                wrong["metadata"]["labels"] = json!({"noise": "yes"});
                if wrong["kind"] == "Ingress" {
                    wrong["spec"]["ingressClassName"] = json!("ferry");
                    wrong["spec"]["rules"] = json!([{"host": "noise.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 1}}}}]}}]);
                }
                server.apply(wrong);
            }
            server.apply(object);
            if i % 4 == 0 {
                server.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("stray-{i}"), "namespace": "shop"}}));
                server.delete("Service", Some("shop"), &format!("stray-{i}"));
            }
        }
        replica.converges_to(&expected).await;
        assert!(replica.ready.load(Ordering::SeqCst));
        // A replica that starts after everything exists lists it in one go.
        let late = Replica::start(&server, 0, "b", no_status());
        late.converges_to(&expected).await;
        assert_eq!(
            late.generation(),
            1,
            "one snapshot, from the complete initial list"
        );
        replica.stop().await;
        late.stop().await;
        assert_authorized(&server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_before_every_watch_has_listed() {
    let expected = manifests_snapshot();
    let server = ApiServer::start(1, ELECTION_NS).await;
    for object in shuffled_objects(7) {
        server.apply(object);
    }
    server.set_down(true);
    let replica = Replica::start(&server, 0, "a", no_status());
    // Not ready, nothing published, while the API server cannot be listed (watched for a
    // while: the watches keep retrying meanwhile).
    let became_ready = tokio::time::timeout(Duration::from_millis(1500), async {
        while !replica.ready.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(became_ready.is_err(), "ready without an API server");
    assert!(replica.router.current().is_none());
    server.set_down(false);
    eventually("ready once the API server answers", || async {
        replica.ready.load(Ordering::SeqCst)
    })
    .await;
    // The first snapshot ever published is the complete one: no half-synced world.
    assert_eq!(replica.generation(), 1);
    assert_eq!(replica.described().as_deref(), Some(expected.as_str()));
    replica.stop().await;
}

/// An Ingress routing `host` to a real backend, so the test can send traffic through ferry.
fn live_route(host: &str, backend: std::net::SocketAddr) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: live, namespace: live}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: {host}\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: live, port: {{number: 80}}}}}}}}]}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: live, namespace: live}}\nspec: {{ports: [{{port: 80}}]}}\n\
         ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: live, namespace: live}}\nsubsets: [{{addresses: [{{ip: \"127.0.0.1\"}}], ports: [{{port: {}}}]}}]\n",
        backend.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_watches_gone_and_outages_lose_no_update_and_traffic_flows() {
    let server = ApiServer::start(1, ELECTION_NS).await;
    let backend = start_backend("live").await;
    server.apply_yaml(&live_route("live.test", backend));
    let replica = Replica::start(&server, 0, "a", no_status());
    // The data plane serves from this replica's router.
    let proxy = start_proxy(ProxyConfig::default());
    let relay = replica.router.clone();
    let proxied = proxy.router.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            if let Some(state) = relay.current()
                && state.snapshot.generation != last
            {
                last = state.snapshot.generation;
                proxied.publish(state.snapshot.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let served = |host: &'static str| {
        let addr = proxy.addr;
        async move {
            send(&http1_client(), get(addr, host, "/"))
                .await
                .is_ok_and(|r| r.status == 200)
        }
    };
    eventually("live.test is served", || served("live.test")).await;
    let has_host = |host: &'static str| {
        let router = replica.router.clone();
        move || {
            let router = router.clone();
            async move {
                router
                    .current()
                    .is_some_and(|s| s.snapshot.routes.lookup(host, "/").is_some())
            }
        }
    };

    // A watch stream cut mid-way, and a change made right then.
    server.cut_watches();
    server.apply_yaml(&live_route("a.test", backend).replace("name: live,", "name: live-a,"));
    eventually("a change after a cut watch is served", has_host("a.test")).await;

    // History compacted: resuming watches get 410 Gone and relist; a deletion made meanwhile
    // must not be lost.
    server.compact();
    server.cut_watches();
    server.delete("Ingress", Some("live"), "live-a");
    eventually("a deletion across a 410 relist is served", || {
        let router = replica.router.clone();
        async move {
            router
                .current()
                .is_some_and(|s| s.snapshot.routes.lookup("a.test", "/").is_none())
        }
    })
    .await;
    let log = server.requests();
    assert!(
        log.iter()
            .any(|l| l.path.contains("ingresses") && l.method == "GET"),
        "relisted"
    );

    // The API server goes away: traffic keeps flowing from the last snapshot.
    server.set_down(true);
    for _ in 0..20 {
        assert!(
            served("live.test").await,
            "traffic flows while the API server is down"
        );
    }
    // Changes made while ferry could not see them arrive when it can.
    server.apply_yaml(&live_route("b.test", backend).replace("name: live,", "name: live-b,"));
    server.set_down(false);
    eventually(
        "a change made during the outage is served",
        has_host("b.test"),
    )
    .await;
    eventually("served through the proxy", || served("b.test")).await;
    assert!(served("live.test").await);
    replica.stop().await;
    assert_authorized(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_of_the_same_objects_publishes_nothing() {
    let expected = manifests_snapshot();
    let server = ApiServer::start(1, ELECTION_NS).await;
    for object in shuffled_objects(1) {
        server.apply(object);
    }
    let replica = Replica::start(&server, 0, "a", no_status());
    replica.converges_to(&expected).await;
    let generation = replica.generation();
    let lists_before = server
        .requests()
        .iter()
        .filter(|l| l.method == "GET")
        .count();
    server.compact();
    server.cut_watches();
    eventually("every kind relisted", || async {
        let log = server.requests();
        [
            "ingresses",
            "ingressclasses",
            "services",
            "endpointslices",
            "endpoints",
            "secrets",
            "nodes",
        ]
        .iter()
        .all(|r| {
            log[lists_before..]
                .iter()
                .any(|l| l.method == "GET" && l.path.ends_with(&format!("/{r}")) && l.status == 200)
        })
    })
    .await;
    // A marker change after the relist: the next snapshot is the marker's, nothing in between.
    let backend = start_backend("marker").await;
    server.apply_yaml(&live_route("marker.test", backend));
    eventually("the marker is served", || async {
        replica
            .router
            .current()
            .is_some_and(|s| s.snapshot.routes.lookup("marker.test", "/").is_some())
    })
    .await;
    assert_eq!(
        replica.generation(),
        generation + 1,
        "the relist itself published nothing"
    );
    replica.stop().await;
}

fn node(name: &str, external: Option<&str>, internal: &str) -> serde_json::Value {
    let mut addresses = vec![
        json!({"type": "InternalIP", "address": internal}),
        json!({"type": "Hostname", "address": name}),
    ];
    if let Some(e) = external {
        addresses.push(json!({"type": "ExternalIP", "address": e}));
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"addresses": addresses}})
}

fn holder(server: &ApiServer) -> Option<String> {
    server.get("Lease", Some(ELECTION_NS), "ferry-leader")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_status_and_another_takes_over() {
    let server = ApiServer::start(2, ELECTION_NS).await;
    for object in shuffled_objects(3) {
        server.apply(object);
    }
    server.apply(node("node-a", Some("203.0.113.10"), "10.0.0.10"));
    server.apply(node("node-b", None, "10.0.0.11"));
    // Not ours, but carrying an address: left alone.
    server.apply_yaml(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: theirs, namespace: shop}\nspec:\n  ingressClassName: nginx\n  defaultBackend: {service: {name: web, port: {number: 80}}}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.99}]}}\n",
    );
    let status = StatusConfig {
        enabled: true,
        ..StatusConfig::default()
    };
    let a = Replica::start(&server, 0, "a", status.clone());
    let b = Replica::start(&server, 1, "b", status.clone());
    let addresses = vec!["10.0.0.11".to_owned(), "203.0.113.10".to_owned()];
    eventually("our Ingresses get the node addresses", || async {
        ["shop/shop", "demo/shop", "demo/checkout"].iter().all(|i| {
            let (ns, name) = i.split_once('/').unwrap();
            server.ingress_status(ns, name) == addresses
        })
    })
    .await;
    assert_eq!(server.ingress_status("shop", "theirs"), ["192.0.2.99"]);
    let leader = holder(&server).expect("a leader");
    let (leader_replica, follower, follower_name, leader_port) = if leader == "a" {
        (a, b, "b", 0)
    } else {
        (b, a, "a", 1)
    };
    let status_writes = |server: &ApiServer| {
        server
            .requests()
            .into_iter()
            .filter(|l| l.method == "PATCH" && l.path.ends_with("/status"))
            .collect::<Vec<_>>()
    };
    let writes = status_writes(&server);
    assert!(!writes.is_empty());
    assert!(
        writes.iter().all(|w| w.port == leader_port),
        "only the leader writes status: {writes:#?}"
    );

    // An Ingress that leaves our class gets its status cleared.
    let mut checkout = server.get("Ingress", Some("demo"), "checkout").unwrap();
    checkout["spec"]["ingressClassName"] = json!("nginx");
    server.apply(checkout);
    eventually(
        "status cleared when the Ingress leaves our class",
        || async { server.ingress_status("demo", "checkout").is_empty() },
    )
    .await;

    // The leader dies without giving up the Lease (its task aborted, as a crash would): the
    // follower takes over when the Lease expires.
    leader_replica.task.abort();
    eventually("the follower holds the Lease", || async {
        holder(&server).as_deref() == Some(follower_name)
    })
    .await;
    server.apply(node("node-c", Some("203.0.113.12"), "10.0.0.12"));
    let follower_port = 1 - leader_port;
    eventually("the new leader writes the new addresses", || async {
        server
            .ingress_status("shop", "shop")
            .contains(&"203.0.113.12".to_owned())
    })
    .await;
    let late_writes: Vec<_> = status_writes(&server)
        .into_iter()
        .filter(|w| w.port != leader_port)
        .collect();
    assert!(late_writes.iter().all(|w| w.port == follower_port) && !late_writes.is_empty());
    follower.stop().await;
    assert_eq!(
        holder(&server),
        None,
        "a replica stopping gives the Lease up"
    );
    assert_authorized(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_a_stale_lease_update() {
    let server = ApiServer::start(1, ELECTION_NS).await;
    let leases: Api<Lease> = Api::namespaced(server.client(0), ELECTION_NS);
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}}))
            .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut first = created.clone();
    first.spec.as_mut().unwrap().holder_identity = Some("y".into());
    leases
        .replace("l", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("z".into());
    let err = leases
        .replace("l", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.is_conflict()),
        "a stale resourceVersion is a conflict"
    );
    // And outside the election namespace, the Role does not allow Leases at all.
    let elsewhere: Api<Lease> = Api::namespaced(server.client(0), "default");
    let err = elsewhere
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.is_forbidden()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_become_events_on_their_ingress() {
    let server = ApiServer::start(1, ELECTION_NS).await;
    let pki = support::Pki::default();
    let cert = pki.issue(&["bad.test"]);
    let other = pki.issue(&["bad.test"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    server.apply_yaml(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: app}}\nspec: {{ports: [{{port: 80}}]}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: broken, namespace: app}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}\
         ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: first, namespace: app}}\nspec:\n  ingressClassName: ferry\n  rules:\n  - host: x.test\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}\n",
        indent(&cert.chain_pem),
        indent(&other.key_pem)
    ));
    server.apply_yaml(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: errors, namespace: app}\nspec:\n  ingressClassName: ferry\n  tls:\n  - {hosts: [missing.test], secretName: nowhere}\n  - {hosts: [bad.test], secretName: broken}\n  rules:\n  - host: x.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n      - {path: /gone, pathType: Prefix, backend: {service: {name: gone, port: {number: 80}}}}\n      - {path: /port, pathType: Prefix, backend: {service: {name: web, port: {number: 81}}}}\n",
    );
    let replica = Replica::start(
        &server,
        0,
        "a",
        StatusConfig {
            enabled: true,
            ..StatusConfig::default()
        },
    );
    let reasons = || {
        let mut r: Vec<String> = server
            .list("Event")
            .iter()
            .filter(|e| e["regarding"]["name"] == "errors")
            .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
            .collect();
        r.sort();
        r
    };
    let expected = [
        "Conflict",
        "InvalidSecret",
        "MissingSecret",
        "UnknownService",
        "UnknownServicePort",
    ];
    eventually("an Event for each problem", || async {
        reasons() == expected
    })
    .await;
    let events = server.list("Event");
    let ingress_uid =
        server.get("Ingress", Some("app"), "errors").unwrap()["metadata"]["uid"].clone();
    for e in events.iter().filter(|e| e["regarding"]["name"] == "errors") {
        assert_eq!(e["regarding"]["kind"], "Ingress");
        assert_eq!(e["regarding"]["uid"], ingress_uid);
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["reportingController"], "ferry.dev/ingress-controller");
        assert!(
            e["note"]
                .as_str()
                .unwrap()
                .starts_with("Ingress app/errors: "),
            "{e}"
        );
    }
    // Another change: the same problems are not reported again.
    let backend = start_backend("other").await;
    server.apply_yaml(&live_route("other.test", backend));
    eventually("the other change is served", || async {
        replica
            .router
            .current()
            .is_some_and(|s| s.snapshot.routes.lookup("other.test", "/").is_some())
    })
    .await;
    assert_eq!(reasons(), expected, "no duplicate Events");
    replica.stop().await;
    assert_authorized(&server);
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_in_cluster_mode_serves_writes_status_and_rides_out_an_outage() {
    let server = ApiServer::start(1, ELECTION_NS).await;
    let backend = start_backend("live").await;
    server.apply_yaml(&live_route("live.test", backend));
    server.apply(node("node-a", None, "10.1.2.3"));
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: test, cluster: {{server: \"http://{}\"}}}}]\n\
             users: [{{name: test, user: {{}}}}]\ncontexts: [{{name: test, context: {{cluster: test, user: test}}}}]\ncurrent-context: test\n",
            server.addrs[0]
        ),
    )
    .unwrap();
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "--http-addr",
            &http.to_string(),
            "--https-addr",
            &https.to_string(),
            "--admin-addr",
            &admin.to_string(),
        ])
        .args([
            "--pod-name",
            "ferry-0",
            "--pod-namespace",
            ELECTION_NS,
            "--watch-backoff-max",
            "500ms",
        ])
        // The L4 path would attach to this machine's root cgroup and interfaces: its tests run
        // in namespaces of their own (tests/l4.rs).
        .arg("--l4=false")
        .args([
            "--lease-duration",
            "2s",
            "--lease-renew-deadline",
            "1500ms",
            "--lease-retry-period",
            "200ms",
        ])
        .env("FERRY_RELOAD_DEBOUNCE", "50ms")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("ferry.log")).unwrap())
        .spawn()
        .unwrap();
    let ready = || async move {
        send(&http1_client(), get(admin, "x", "/readyz"))
            .await
            .is_ok_and(|r| r.status == 200)
    };
    eventually("ferry is ready", ready).await;
    let served = || async move {
        send(&http1_client(), get(http, "live.test", "/"))
            .await
            .is_ok_and(|r| r.status == 200)
    };
    assert!(served().await);
    eventually("status written", || async {
        server.ingress_status("live", "live") == ["10.1.2.3"]
    })
    .await;
    eventually("leading", || async {
        metric_lines(admin, "ferry_leader ").await == ["ferry_leader 1"]
    })
    .await;
    let stale = || async move {
        metric_lines(admin, "ferry_watch_stale{")
            .await
            .iter()
            .any(|l| l.ends_with(" 1"))
    };
    assert!(!stale().await);

    server.set_down(true);
    eventually("the watches are said to be stale", stale).await;
    for _ in 0..10 {
        assert!(served().await, "traffic flows while the API server is down");
    }
    server.set_down(false);
    eventually("no longer stale", || async { !stale().await }).await;
    assert!(
        metric_lines(admin, "ferry_snapshot_event_to_served_seconds_count")
            .await
            .len()
            == 1
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_authorized(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_addresses_from_flags_or_a_service() {
    let backend = start_backend("live").await;
    let lb_service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ferry", "namespace": ELECTION_NS},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "lb.example.net"}]}}});
    for (status, expected) in [
        (
            StatusConfig {
                enabled: true,
                addresses: vec!["ingress.example.com".into(), "192.0.2.1".into()],
                ..StatusConfig::default()
            },
            vec!["192.0.2.1", "ingress.example.com"],
        ),
        (
            StatusConfig {
                enabled: true,
                publish_service: Some(ferry_model::ObjectRef::new(ELECTION_NS, "ferry")),
                ..StatusConfig::default()
            },
            vec!["198.51.100.7", "lb.example.net"],
        ),
    ] {
        let server = ApiServer::start(1, ELECTION_NS).await;
        server.apply_yaml(&live_route("live.test", backend));
        server.apply(node("node-a", None, "10.0.0.1"));
        server.apply(lb_service.clone());
        let replica = Replica::start(&server, 0, "a", status);
        eventually("status published", || async {
            server.ingress_status("live", "live") == expected
        })
        .await;
        let ingress = server.get("Ingress", Some("live"), "live").unwrap();
        let entries = &ingress["status"]["loadBalancer"]["ingress"];
        assert!(
            entries
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e.get("ip").is_some() != e.get("hostname").is_some()),
            "{entries}"
        );
        replica.stop().await;
        assert_authorized(&server);
    }
}
