//! Endpoints that fail: passive health ejects them, idempotent requests go to another one,
//! and an endpoint that dies under load costs clients nothing.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_dataplane::ProxyConfig;
use ferry_dataplane::backend::Backend;
use ferry_model::{LoadBalance, PathType};
use support::{SnapshotBuilder, dead_addr, get, http1_client, send, start_backend, start_proxy};

/// The value of a counter in `/metrics` for series whose labels contain `needle`, summed.
fn counter(name: &str, needle: &str) -> u64 {
    ferry_dataplane::telemetry::render()
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_ejected_and_costs_no_request() {
    let proxy = start_proxy(ProxyConfig::default());
    let live = start_backend("live").await;
    let mut s = SnapshotBuilder::default();
    for policy in [LoadBalance::RoundRobin, LoadBalance::Ewma] {
        let name = format!("eject-{policy}");
        let u = s.upstream(&name, &[dead_addr(), live], policy);
        let host: &'static str = format!("{name}.test").leak();
        s.route(Some(host), "/", PathType::Prefix, u);
    }
    s.publish(&proxy.router, 1);
    let client = http1_client();
    for policy in [LoadBalance::RoundRobin, LoadBalance::Ewma] {
        let name = format!("eject-{policy}");
        let host = format!("{name}.test");
        for i in 0..60 {
            let r = send(&client, get(proxy.addr, &host, "/")).await.unwrap();
            assert_eq!(r.status, 200, "{policy}: request {i} failed");
        }
        // Refused connects were retried on the live endpoint; once ejected, the dead one is
        // not tried again for the ejection time.
        let errors = counter("ferry_upstream_connect_errors_total", &name);
        assert!(
            (5..=6).contains(&errors),
            "{policy}: {errors} connects to the dead endpoint in 60 requests"
        );
        assert_eq!(
            counter("ferry_upstream_ejections_total", &name),
            1,
            "{policy}"
        );
    }
}

/// A backend on a runtime of its own, so that stopping the runtime kills it with every
/// connection it holds, as a crashed pod would.
fn killable_backend(name: &str) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let backend = Backend::new(name);
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        backend.serve(listener).await;
    });
    (addr, runtime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_load_fails_no_request() {
    let proxy = start_proxy(ProxyConfig::default());
    let survivor = start_backend("survivor").await;
    let (doomed, runtime) = killable_backend("doomed");
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("killed", &[survivor, doomed], LoadBalance::RoundRobin);
    s.route(Some("kill.test"), "/", PathType::Prefix, u);
    s.publish(&proxy.router, 1);

    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let until = Instant::now() + Duration::from_millis(2500);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (ok, failed, addr) = (ok.clone(), failed.clone(), proxy.addr);
            tokio::spawn(async move {
                let client = http1_client();
                while Instant::now() < until {
                    match send(&client, get(addr, "kill.test", "/")).await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    support::eventually("the load is running", || async {
        ok.load(Ordering::Relaxed) >= 300
    })
    .await;
    let served_before = ok.load(Ordering::Relaxed);
    // Kill it: the listener and every connection close at once.
    runtime.shutdown_background();
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(
        served_before > 0 && ok > served_before,
        "load ran: {ok} served"
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed when a backend died",
        ok + failed
    );
}
