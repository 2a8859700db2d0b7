//! The admin server: health, readiness (snapshot and listeners), metrics.

mod support;

use std::sync::Arc;

use ferry_dataplane::ProxyConfig;
use ferry_dataplane::admin::{Readiness, serve};
use ferry_model::{LoadBalance, PathType};
use support::*;
use tokio::sync::watch;

async fn admin_get(admin: std::net::SocketAddr, path: &str) -> Reply {
    send(&http1_client(), get(admin, "admin", path))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_needs_a_snapshot_and_listening_proxies() {
    let proxy = start_proxy(ProxyConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let readiness = Readiness::new(proxy.router.clone(), vec![proxy.addr]);
    let (_stop, shutdown) = watch::channel(false);
    tokio::spawn(serve(listener, Arc::new(readiness), shutdown));

    let health = admin_get(admin, "/healthz").await;
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    let unready = admin_get(admin, "/readyz").await;
    assert_eq!(unready.status, 503);
    assert_eq!(
        &unready.body[..],
        b"not ready: no configuration served yet\n"
    );

    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[dead_addr()], LoadBalance::RoundRobin);
    s.route(None, "/", PathType::Prefix, u);
    s.publish(&proxy.router, 1);
    assert_eq!(admin_get(admin, "/readyz").await.status, 200);

    let metrics = admin_get(admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8_lossy(&metrics.body);
    // Labelled families appear with their first sample; unlabelled ones at once.
    for family in [
        "ferry_upstreams 1",
        "ferry_http_active_connections",
        "ferry_snapshot_generation",
        "ferry_routes 1",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
    assert_eq!(admin_get(admin, "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_does_not_listen_is_not_ready() {
    let router = ferry_dataplane::Router::new();
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[dead_addr()], LoadBalance::RoundRobin);
    s.route(None, "/", PathType::Prefix, u);
    s.publish(&router, 1);
    let readiness = Readiness::new(router, vec![dead_addr()]);
    let why = readiness.check().await.unwrap_err();
    assert!(why.contains("does not accept connections"), "{why}");
}
