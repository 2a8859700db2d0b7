//! The L7 proxy end to end: real sockets, real HTTP clients, real backends, snapshots built by
//! hand (translation from Kubernetes objects is tested in the controller).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferry_dataplane::ProxyConfig;
use ferry_dataplane::backend::Backend;
use ferry_model::{LoadBalance, PathType, UpstreamTarget};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use support::*;
use tokio_tungstenite::tungstenite::Message;

use LoadBalance::{Ewma, RoundRobin};
use PathType::{Exact, Prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_and_forwards_the_request_unmodified() {
    let proxy = start_proxy(ProxyConfig::default());
    let (web, api) = (start_backend("web").await, start_backend("api").await);
    let mut s = SnapshotBuilder::default();
    let w = s.upstream("web", &[web], RoundRobin);
    let a = s.upstream("api", &[api], RoundRobin);
    s.route(Some("shop.example.com"), "/", Prefix, w)
        .route(Some("shop.example.com"), "/api", Prefix, a)
        .route(Some("*.example.com"), "/", Prefix, a);
    s.publish(&proxy.router, 1);
    let client = http1_client();

    let r = send(&client, get(proxy.addr, "shop.example.com", "/index.html"))
        .await
        .unwrap();
    assert_eq!((r.status, r.echo().backend.as_str()), (200, "web"));
    let r = send(
        &client,
        get(
            proxy.addr,
            "Shop.Example.COM:8080",
            "/api/v1/items?x=1&y=%2F",
        ),
    )
    .await
    .unwrap();
    let echo = r.echo();
    assert_eq!((r.status, echo.backend.as_str()), (200, "api"));
    assert_eq!(
        echo.uri, "/api/v1/items?x=1&y=%2F",
        "path and query reach the backend as sent"
    );
    let r = send(&client, get(proxy.addr, "cdn.example.com", "/x"))
        .await
        .unwrap();
    assert_eq!(r.echo().backend, "api");

    // Method, body and headers pass through; forwarding headers say what ferry saw.
    let req = http::Request::builder()
        .method("PATCH")
        .uri(format!("http://{}/api/thing", proxy.addr))
        .header("host", "shop.example.com")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let echo = send(&client, req).await.unwrap().echo();
    assert_eq!(echo.method, "PATCH");
    assert_eq!(echo.body_bytes, 10);
    let h = &echo.headers;
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["host"], "shop.example.com");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "a client's own X-Forwarded-For is not trusted"
    );
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "shop.example.com");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], proxy.addr.port().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_forwarded_headers_are_extended_not_replaced() {
    let proxy = start_proxy(ProxyConfig {
        trust_forwarded_headers: true,
        ..ProxyConfig::default()
    });
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let w = s.upstream("web", &[web], RoundRobin);
    s.route(None, "/", Prefix, w);
    s.publish(&proxy.router, 1);
    let req = http::Request::get(format!("http://{}/", proxy.addr))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .body(Full::default())
        .unwrap();
    let echo = send(&http1_client(), req).await.unwrap().echo();
    assert_eq!(echo.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(echo.headers["x-forwarded-proto"], "https");
    assert_eq!(echo.headers["x-forwarded-port"], "443");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_do_not_reach_the_backend() {
    let proxy = start_proxy(ProxyConfig::default());
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let w = s.upstream("web", &[web], RoundRobin);
    s.route(None, "/", Prefix, w);
    s.publish(&proxy.router, 1);
    let response = raw(
        proxy.addr,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close, x-secret\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: 1\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let echo: ferry_dataplane::backend::Echo = serde_json::from_str(body.trim()).unwrap();
    for gone in ["x-secret", "keep-alive", "proxy-connection", "te"] {
        assert!(
            !echo.headers.contains_key(gone),
            "{gone} reached the backend: {:?}",
            echo.headers
        );
    }
    assert_eq!(echo.headers["x-kept"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_404_503_502_504() {
    let proxy = start_proxy(ProxyConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    });
    // A backend that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = silent.accept().await {
            h.lock().await.push(conn);
        }
    });
    let mut s = SnapshotBuilder::default();
    let empty = s.upstream("empty", &[], RoundRobin);
    let dead = s.upstream("dead", &[dead_addr()], RoundRobin);
    let slow = s.upstream("slow", &[silent_addr], RoundRobin);
    s.route(Some("a.test"), "/empty", Prefix, empty)
        .route(Some("a.test"), "/dead", Prefix, dead)
        .route(Some("a.test"), "/slow", Prefix, slow);
    s.publish(&proxy.router, 1);
    let client = http1_client();
    let status = |host: &'static str, path: &'static str| {
        let client = client.clone();
        let addr = proxy.addr;
        async move { send(&client, get(addr, host, path)).await.unwrap().status }
    };
    assert_eq!(status("a.test", "/nothing-here").await, 404);
    assert_eq!(status("b.test", "/empty").await, 404);
    assert_eq!(status("a.test", "/empty").await, 503);
    assert_eq!(status("a.test", "/dead").await, 502);
    assert_eq!(status("a.test", "/slow").await, 504);
    let head = send(
        &client,
        http::Request::head(format!("http://{}/x", proxy.addr))
            .header("host", "b.test")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        (head.status, head.body.len()),
        (404, 0),
        "HEAD gets no body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let proxy = start_proxy(ProxyConfig::default());
    let alive = start_backend("alive").await;
    for policy in [RoundRobin, Ewma] {
        let mut s = SnapshotBuilder::default();
        let u = s.upstream("mixed", &[dead_addr(), alive], policy);
        s.route(None, "/", Prefix, u);
        s.publish(&proxy.router, 1);
        let client = http1_client();
        for i in 0..10 {
            // POST too: the request never reached the refused endpoint, so it is safe to retry.
            let req = http::Request::post(format!("http://{}/r{i}", proxy.addr))
                .body(Full::new(Bytes::from_static(b"body")))
                .unwrap();
            let r = send(&client, req).await.unwrap();
            assert_eq!(
                (r.status, r.echo().backend.as_str()),
                (200, "alive"),
                "{policy} request {i}"
            );
        }
    }
    let metrics = ferry_dataplane::telemetry::render();
    assert!(
        metrics.contains("ferry_upstream_connect_errors_total{error=\"ConnectRefused\",upstream=\"default/mixed:80\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_load_evenly_over_all_endpoints() {
    let proxy = start_proxy(ProxyConfig::default());
    let backends = [
        start_backend("b0").await,
        start_backend("b1").await,
        start_backend("b2").await,
    ];
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("spread", &backends, RoundRobin);
    s.route(None, "/", Prefix, u);
    s.publish(&proxy.router, 1);
    let client = http1_client();
    let mut seen = HashMap::<String, usize>::new();
    for _ in 0..60 {
        let r = send(&client, get(proxy.addr, "x", "/")).await.unwrap();
        *seen.entry(r.echo().backend).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.values().all(|&n| n == 20),
        "round robin is exact: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_steers_traffic_away_from_a_slow_endpoint() {
    let proxy = start_proxy(ProxyConfig::default());
    let fast = start(Backend::new("fast")).await;
    let slow = start(Backend::new("slow").with_delay(Duration::from_millis(100))).await;
    let client = http1_client();
    let count = |policy| {
        let mut s = SnapshotBuilder::default();
        let u = s.upstream(&format!("pair-{policy}"), &[fast, slow], policy);
        s.route(None, "/", Prefix, u);
        s.publish(&proxy.router, 1);
        let client = client.clone();
        let addr = proxy.addr;
        async move {
            let mut seen = HashMap::<String, usize>::new();
            for _ in 0..40 {
                let r = send(&client, get(addr, "x", "/")).await.unwrap();
                *seen.entry(r.echo().backend).or_default() += 1;
            }
            seen
        }
    };
    let rr = count(RoundRobin).await;
    assert_eq!((rr["fast"], rr["slow"]), (20, 20), "{rr:?}");
    let ewma = count(Ewma).await;
    // Both are tried (no history yet), then the slow one is avoided.
    assert!(ewma.get("slow").copied().unwrap_or(0) <= 6, "{ewma:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_downstream() {
    let proxy = start_proxy(ProxyConfig::default());
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let w = s.upstream("web", &[web], RoundRobin);
    s.route(Some("h2.test"), "/", Prefix, w);
    s.publish(&proxy.router, 1);
    let h2 = h2c_connect(proxy.addr).await;
    let r = h2.get("h2.test", "/h2/path?q=1").await.unwrap();
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.status, 200);
    let echo = r.echo();
    assert_eq!(echo.backend, "web");
    assert_eq!(echo.uri, "/h2/path?q=1");
    assert_eq!(
        echo.version, "HTTP/1.1",
        "upstreams are spoken to in HTTP/1.1"
    );
    // Many concurrent streams on the one connection.
    let all = futures_util::future::join_all((0..20).map(|i| {
        let h2 = h2.clone();
        async move {
            h2.get("h2.test:8080", &format!("/s{i}"))
                .await
                .unwrap()
                .status
        }
    }))
    .await;
    assert!(all.iter().all(|&s| s == 200), "{all:?}");
    assert_eq!(h2.get("other.test", "/").await.unwrap().status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_passes_through() {
    let proxy = start_proxy(ProxyConfig::default());
    let ws = start_backend("ws").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("ws", &[ws], RoundRobin);
    s.route(Some("ws.test"), "/chat", Exact, u);
    s.publish(&proxy.router, 1);
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let request = http::Request::get("ws://ws.test/chat")
        .header("host", "ws.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..3 {
        socket
            .send(Message::text(format!("hello {i}")))
            .await
            .unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("ws: hello {i}")));
    }
    socket
        .send(Message::Binary(Bytes::from_static(&[0, 1, 2])))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::Binary(Bytes::from_static(&[0, 1, 2]))
    );
    socket.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_services_resolve_through_dns() {
    let proxy = start_proxy(ProxyConfig::default());
    let web = start_backend("external").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream_to(
        "ext",
        UpstreamTarget::ExternalName {
            host: "localhost".into(),
            port: web.port(),
        },
        RoundRobin,
    );
    s.route(None, "/", Prefix, u);
    s.publish(&proxy.router, 1);
    // localhost may resolve to ::1 first, where nothing listens: the retry takes 127.0.0.1.
    let r = send(&http1_client(), get(proxy.addr, "x", "/"))
        .await
        .unwrap();
    assert_eq!((r.status, r.echo().backend.as_str()), (200, "external"));

    let mut s = SnapshotBuilder::default();
    let u = s.upstream_to(
        "nowhere",
        UpstreamTarget::ExternalName {
            host: "name.invalid".into(),
            port: 80,
        },
        RoundRobin,
    );
    s.route(None, "/", Prefix, u);
    s.publish(&proxy.router, 2);
    let r = send(&http1_client(), get(proxy.addr, "x", "/"))
        .await
        .unwrap();
    assert_eq!(
        r.status, 502,
        "a name that does not resolve is a bad gateway"
    );
}

/// Replaces the snapshot 1,000 times (endpoints added and removed, routes moved between
/// upstreams) while clients send requests without pause; every request has a valid route at
/// all times, so none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_swaps_under_load_fail_no_request() {
    let proxy = start_proxy(ProxyConfig::default());
    let mut backends = Vec::new();
    for i in 0..4 {
        backends.push(start_backend(&format!("b{i}")).await);
    }
    let build = |i: u64| {
        let mut s = SnapshotBuilder::default();
        // The endpoint set rotates: 1 to 4 endpoints, different ones each time.
        let n = (i % 4) as usize + 1;
        let start = (i / 4 % 4) as usize;
        let eps: Vec<_> = (0..n).map(|k| backends[(start + k) % 4]).collect();
        let policy = if i.is_multiple_of(2) {
            RoundRobin
        } else {
            Ewma
        };
        let a = s.upstream("a", &eps, policy);
        let b = s.upstream("b", &[backends[(i % 4) as usize]], RoundRobin);
        // Routes change too: /x moves between upstreams; /y flips between Exact and Prefix.
        s.route(
            Some("swap.test"),
            "/x",
            Prefix,
            if i.is_multiple_of(3) { a } else { b },
        )
        .route(
            Some("swap.test"),
            "/y",
            if i.is_multiple_of(2) { Exact } else { Prefix },
            a,
        )
        .route(Some("*.test"), "/", Prefix, b);
        if i.is_multiple_of(5) {
            s.route(Some("swap.test"), "/z", Prefix, a);
        }
        s
    };
    build(0).publish(&proxy.router, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, ok) = (stop.clone(), ok.clone());
        let addr = proxy.addr;
        clients.push(tokio::spawn(async move {
            let h1 = http1_client();
            let h2 = h2c_connect(addr).await;
            let mut failures = Vec::new();
            let paths = [
                ("swap.test", "/x/1"),
                ("swap.test", "/y"),
                ("other.test", "/q"),
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (host, path) = paths[i % paths.len()];
                i += 1;
                let result = if c % 2 == 0 {
                    send(&h1, get(addr, host, path)).await
                } else {
                    h2.get(host, path).await
                };
                match result {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("{host}{path}: {}", r.status)),
                    Err(e) => failures.push(format!("{host}{path}: {e}")),
                }
            }
            failures
        }));
    }
    for i in 1..=1000u64 {
        build(i).publish(&proxy.router, i);
        if i % 10 == 0 {
            tokio::task::yield_now().await;
            // Let requests interleave with swaps rather than race past them all at once.
            let before = ok.load(Ordering::Relaxed);
            eventually("requests progress between swaps", || {
                let ok = ok.clone();
                async move { ok.load(Ordering::Relaxed) > before }
            })
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        ok.load(Ordering::Relaxed) >= 100,
        "only {} requests completed",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_ingress_service_and_status() {
    let proxy = start_proxy(ProxyConfig::default());
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let w = s.upstream("metrics-web", &[web], RoundRobin);
    s.route(Some("metrics.test"), "/", Prefix, w);
    s.publish(&proxy.router, 7);
    let client = http1_client();
    for _ in 0..3 {
        assert_eq!(
            send(&client, get(proxy.addr, "metrics.test", "/"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        send(&client, get(proxy.addr, "metrics.test", "/?status=503"))
            .await
            .unwrap()
            .status,
        503
    );
    let m = ferry_dataplane::telemetry::render();
    let line = |needle: &str| m.lines().find(|l| l.starts_with(needle)).map(str::to_owned);
    assert_eq!(
        line("ferry_http_requests_total{ingress=\"test-ingress\",namespace=\"default\",service=\"metrics-web\",status=\"2xx\"}").as_deref(),
        Some("ferry_http_requests_total{ingress=\"test-ingress\",namespace=\"default\",service=\"metrics-web\",status=\"2xx\"} 3"),
        "{m}"
    );
    assert!(line("ferry_http_requests_total{ingress=\"test-ingress\",namespace=\"default\",service=\"metrics-web\",status=\"5xx\"} 1").is_some(), "{m}");
    assert!(
        m.contains("ferry_http_request_duration_seconds_bucket{ingress=\"test-ingress\""),
        "{m}"
    );
    assert!(m.contains("ferry_http_active_connections"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    // A backend that counts the connections it accepts and serves each with the echo logic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (inner, inner_addr) = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    };
    tokio::spawn(Backend::new("pooled").serve(inner));
    let count = accepted.clone();
    tokio::spawn(async move {
        // Splice each accepted connection to the echo backend, counting accepts.
        while let Ok((mut down, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut up = tokio::net::TcpStream::connect(inner_addr).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    let proxy = start_proxy(ProxyConfig::default());
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("pooled", &[addr], RoundRobin);
    s.route(None, "/", Prefix, u);
    s.publish(&proxy.router, 1);
    let client = http1_client();
    for i in 0..20 {
        let r = send(&client, get(proxy.addr, "x", &format!("/{i}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let n = accepted.load(Ordering::Relaxed);
    assert!(
        n <= 2,
        "20 sequential requests opened {n} upstream connections"
    );
}
