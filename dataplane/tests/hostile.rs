//! Clients that break the rules, by accident or on purpose: limits on what a client may send
//! and hold, and malformed or ambiguous requests (smuggling attempts among them). Each case
//! uses a real proxy on loopback, raw sockets, and an echo backend that says what it got.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ferry_dataplane::ProxyConfig;
use ferry_dataplane::config::Limits;
use ferry_model::{LoadBalance, PathType};
use support::{Proxy, SnapshotBuilder, get, http1_client, raw, send, start_backend, start_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy with `limits`, routing `app.test` to an echo backend.
async fn proxy_with(limits: Limits) -> Proxy {
    let proxy = start_proxy(ProxyConfig {
        limits,
        ..ProxyConfig::default()
    });
    let backend = start_backend("app").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("app", &[backend], LoadBalance::RoundRobin);
    s.route(Some("app.test"), "/", PathType::Prefix, u);
    s.publish(&proxy.router, 1);
    proxy
}

/// What the proxy answers to `request` on a connection of its own, within 3 s.
async fn answer(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => format!(
            "(no answer within 3 s: {:?})",
            String::from_utf8_lossy(&out)
        ),
    }
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The proxy still serves a normal request (nothing above broke it).
async fn still_serves(addr: SocketAddr) {
    let r = send(&http1_client(), get(addr, "app.test", "/ok"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

/// Reads until the server closes the connection, up to `limit`; whether it closed.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_get_431() {
    let proxy = proxy_with(Limits {
        max_request_headers: 20,
        max_request_header_bytes: 2048,
        ..Limits::default()
    })
    .await;
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..25 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status(&raw(proxy.addr, many.as_bytes()).await), 431);

    let large = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nCookie: {}\r\n\r\n",
        "a".repeat(4000)
    );
    assert_eq!(status(&raw(proxy.addr, large.as_bytes()).await), 431);
    // An absurd Host header is one of them.
    let host = format!("GET / HTTP/1.1\r\nHost: {}.test\r\n\r\n", "h".repeat(5000));
    assert_eq!(status(&raw(proxy.addr, host.as_bytes()).await), 431);
    still_serves(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_declared_or_chunked() {
    let proxy = proxy_with(Limits {
        max_body_bytes: Some(1000),
        ..Limits::default()
    })
    .await;
    // Declared: refused before the body is read.
    let declared = "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5000\r\n\r\n";
    let r = raw(proxy.addr, declared.as_bytes()).await;
    assert_eq!(status(&r), 413, "{r}");
    // Chunked: refused once the body grows past the limit.
    let mut chunked =
        String::from("POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..5 {
        chunked.push_str(&format!("1f4\r\n{}\r\n", "b".repeat(500)));
    }
    chunked.push_str("0\r\n\r\n");
    let r = raw(proxy.addr, chunked.as_bytes()).await;
    assert_eq!(status(&r), 413, "{r}");
    // At the limit: served.
    let ok = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}",
        "c".repeat(1000)
    );
    let r = raw(proxy.addr, ok.as_bytes()).await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(r.contains("\"body_bytes\": 1000"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_and_idle_keepalive_closes() {
    let proxy = proxy_with(Limits {
        client_header_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    // One byte every 100 ms: each read is quick, the head never completes in time.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let head = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ".to_vec();
    let mut cut = false;
    for byte in head.iter().chain(b"z".repeat(200).iter()) {
        if s.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut s, Duration::from_millis(100)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a head trickled over 20 s was not cut off");

    // Keep-alive: after a response, an idle connection is closed.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)).await,
        "an idle keep-alive connection stays open"
    );
    still_serves(proxy.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let proxy = proxy_with(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    // Two keep-alive connections held open after a request each: answered, so admitted.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).trim_end().ends_with('}') {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("answered within 5 s")
                .unwrap();
            assert!(n > 0, "closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
        held.push(s);
    }
    // Once both are counted, a further connection is closed without an answer.
    support::eventually("a third connection is closed unanswered", || async {
        let mut third = TcpStream::connect(proxy.addr).await.unwrap();
        let _ = third
            .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut out)).await;
        read.is_ok() && out.is_empty()
    })
    .await;
    drop(held);
    support::eventually("served again once the held connections close", || async {
        send(&http1_client(), get(proxy.addr, "app.test", "/"))
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
}

/// Malformed and ambiguous requests are refused with 400 (never passed on for the backend to
/// interpret differently), and the proxy keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_ambiguous_requests_get_400() {
    let proxy = proxy_with(Limits {
        client_header_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let cases: &[(&str, &[u8])] = &[
        ("unknown version", b"GET / HTTP/7.1\r\nHost: app.test\r\n\r\n"),
        ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: b\x00c\r\n\r\n"),
        ("bare CR in a header", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: b\rc\r\n\r\n"),
        ("space before the colon", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A : b\r\n\r\n"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: b\r\n c\r\n\r\n"),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "a Content-Length that is not a number",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3x\r\n\r\nabc",
        ),
        (
            "an unknown transfer coding",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n"),
    ];
    let mut failures = Vec::new();
    for (what, request) in cases {
        let r = answer(proxy.addr, request).await;
        if status(&r) != 400 {
            failures.push(format!(
                "{what}: {:?}",
                r.lines().next().unwrap_or("(closed)")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not answered 400:\n{}",
        failures.join("\n")
    );

    // Request lines pingora cannot make sense of wait for more bytes: the header timeout
    // closes them, and nothing reaches the backend.
    for request in [
        &b"GET\r\nHost: app.test\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
    ] {
        let r = answer(proxy.addr, request).await;
        assert!(r.is_empty(), "answered {request:?} with {r:?}");
    }
    // An illegal byte in the target is percent-encoded by pingora, never passed on raw.
    let r = answer(
        proxy.addr,
        b"GET /a b HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.contains("\"uri\": \"/a%20b\""), "{r}");
    still_serves(proxy.addr).await;
}

/// Smuggling: a request hidden in another's body must never reach the backend as a request
/// of its own, whichever of Content-Length and Transfer-Encoding a party believes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_requests_never_reach_the_backend() {
    let proxy = proxy_with(Limits::default()).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let cases = [
        // CL.TE: Content-Length covers the smuggled request; chunked ends before it.
        format!(
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
            5 + smuggled.len()
        ),
        // TE.CL: chunked covers it; Content-Length ends before it.
        format!(
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
        // An obfuscated Transfer-Encoding.
        format!(
            "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}",
            5 + smuggled.len()
        ),
    ];
    let seen = |r: &str| r.contains("\"uri\": \"/smuggled\"");
    // The check recognises the hidden request when it is sent on its own.
    let r = answer(
        proxy.addr,
        smuggled
            .replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(seen(&r), "the request on its own is served:\n{r}");
    for (i, request) in cases.iter().enumerate() {
        let r = answer(proxy.addr, request.as_bytes()).await;
        assert!(
            !seen(&r),
            "case {i}: the backend saw the smuggled request:\n{r}"
        );
    }
    still_serves(proxy.addr).await;
}

/// Routing matches the normal form of the path (dot segments, repeated slashes, escaped
/// unreserved characters); the backend gets the path exactly as the client sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_route_by_the_normal_form_and_reach_the_backend_unmodified() {
    let proxy = start_proxy(ProxyConfig::default());
    let (admin, app) = (start_backend("admin").await, start_backend("app").await);
    let mut s = SnapshotBuilder::default();
    let a = s.upstream("admin", &[admin], LoadBalance::RoundRobin);
    let p = s.upstream("app", &[app], LoadBalance::RoundRobin);
    s.route(Some("app.test"), "/admin", PathType::Prefix, a)
        .route(Some("app.test"), "/", PathType::Prefix, p);
    s.publish(&proxy.router, 1);
    for (path, backend) in [
        ("/public/../admin/users", "admin"),
        ("//admin", "admin"),
        ("/./admin/", "admin"),
        ("/%61dmin", "admin"),
        ("/admin/../public", "app"),
        ("/admin%2Fusers", "app"),
        ("/adminx", "app"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
        let r = answer(proxy.addr, request.as_bytes()).await;
        assert!(
            r.contains(&format!("\"backend\": \"{backend}\"")),
            "{path} should reach {backend}:\n{r}"
        );
        assert!(
            r.contains(&format!("\"uri\": \"{path}\"")),
            "{path} reaches the backend unmodified:\n{r}"
        );
    }
}

/// Clients choose Host headers and paths freely: none of it becomes a metric label, so the
/// number of series stays bounded whatever they send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_strings_never_become_metric_labels() {
    let proxy = proxy_with(Limits::default()).await;
    let client = http1_client();
    for i in 0..50 {
        let host = format!("cardinality-{i}.evil.test");
        let _ = send(&client, get(proxy.addr, &host, &format!("/path-{i}"))).await;
        let _ = send(
            &client,
            get(proxy.addr, "app.test", &format!("/cardinality-path-{i}")),
        )
        .await;
    }
    let metrics = ferry_dataplane::telemetry::render();
    assert!(
        !metrics.contains("cardinality-"),
        "a request string reached the metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("cardinality-"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A replaced snapshot is freed once the last request that started under it ends: swaps
/// under load do not pile up old routing tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_snapshots_are_freed_after_their_last_request() {
    use ferry_dataplane::backend::Backend;

    let proxy = start_proxy(ProxyConfig::default());
    let slow = support::start(Backend::new("slow").with_delay(Duration::from_millis(800))).await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("slow", &[slow], LoadBalance::RoundRobin);
    s.route(Some("app.test"), "/", PathType::Prefix, u);
    s.publish(&proxy.router, 1);
    let old = std::sync::Arc::downgrade(&proxy.router.current().unwrap());

    // A request in flight under generation 1 while generation 2 replaces it.
    let addr = proxy.addr;
    let in_flight =
        tokio::spawn(async move { send(&http1_client(), get(addr, "app.test", "/")).await });
    support::eventually("the request holds generation 1", || async {
        old.strong_count() >= 2
    })
    .await;
    s.publish(&proxy.router, 2);
    assert!(
        old.upgrade().is_some(),
        "freed under a request still using it"
    );
    assert_eq!(in_flight.await.unwrap().unwrap().status, 200);
    support::eventually("generation 1 is freed", || async {
        old.upgrade().is_none()
    })
    .await;
    // And a swap with no request in between frees at once.
    let two = std::sync::Arc::downgrade(&proxy.router.current().unwrap());
    s.publish(&proxy.router, 3);
    assert!(
        two.upgrade().is_none(),
        "generation 2 outlived its replacement"
    );
}

/// Raw HTTP/2 frames, enough to misbehave in ways a well-behaved client library will not.
mod h2_frames {
    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const RST_STREAM: u8 = 0x3;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const GOAWAY: u8 = 0x7;
    pub(super) const END_STREAM_AND_HEADERS: u8 = 0x5;
    pub(super) const CANCEL: u32 = 0x8;
    pub(super) const REFUSED_STREAM: u32 = 0x7;
    pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub(super) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

    pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    /// The connection preface and an empty SETTINGS frame.
    pub(super) fn preface() -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out
    }

    /// A complete GET (HEADERS with END_STREAM) for `authority`: static-table `:method GET`,
    /// `:scheme http`, `:path /`, and `:authority` as a literal without indexing.
    pub(super) fn get(stream: u32, authority: &str) -> Vec<u8> {
        let mut block = vec![0x82, 0x86, 0x84, 0x01, authority.len() as u8];
        block.extend(authority.as_bytes());
        frame(HEADERS, END_STREAM_AND_HEADERS, stream, &block)
    }

    pub(super) fn reset(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// One frame read from `s`: (type, flags, stream, payload); `None` at the end.
    pub(super) async fn read(s: &mut tokio::net::TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        s.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }

    pub(super) fn code(payload: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(payload[at..at + 4].try_into().unwrap())
    }
}

/// A backend that counts the requests it receives and answers each after `delay`.
async fn counting_backend(
    delay: Duration,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut chunk).await {
                    buf.extend_from_slice(&chunk[..n]);
                    // Requests without bodies: each ends at an empty line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        count.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_over_the_limit_are_refused_and_rapid_reset_is_cut_off() {
    use h2_frames::*;
    use std::sync::atomic::Ordering;
    let proxy = start_proxy(ProxyConfig {
        limits: Limits {
            h2_max_concurrent_streams: 4,
            ..Limits::default()
        },
        ..ProxyConfig::default()
    });
    let (backend, served) = counting_backend(Duration::from_millis(300)).await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("slow", &[backend], LoadBalance::RoundRobin);
    s.route(Some("app.test"), "/", PathType::Prefix, u);
    s.publish(&proxy.router, 1);

    // The limit is announced, and streams beyond it are refused while the first are open.
    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = preface();
    for i in 0..6u32 {
        out.extend(get(1 + 2 * i, "app.test"));
    }
    c.write_all(&out).await.unwrap();
    let (mut announced, mut refused, mut answered) = (None, 0, 0);
    while answered + refused < 6 {
        let frame = tokio::time::timeout(Duration::from_secs(5), read(&mut c)).await;
        let Ok(Some((kind, flags, _, payload))) = frame else {
            panic!("connection ended after {answered} answers and {refused} refusals");
        };
        match kind {
            SETTINGS if flags & 0x1 == 0 => {
                for setting in payload.chunks(6) {
                    if u16::from_be_bytes([setting[0], setting[1]])
                        == SETTINGS_MAX_CONCURRENT_STREAMS
                    {
                        announced = Some(code(setting, 2));
                    }
                }
            }
            RST_STREAM => {
                assert_eq!(code(&payload, 0), REFUSED_STREAM, "unexpected reset");
                refused += 1;
            }
            HEADERS => answered += 1,
            GOAWAY => panic!("GOAWAY {:#x} for six streams", code(&payload, 4)),
            _ => {}
        }
    }
    assert_eq!(announced, Some(4), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert_eq!((answered, refused), (4, 2));

    // Rapid reset (CVE-2023-44487): streams opened and cancelled at once, many per packet.
    // The connection is told to calm down and closed, long before the backend sees them all.
    let before = served.load(Ordering::SeqCst);
    let mut c = TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = preface();
    let attempts = 2000u32;
    for i in 0..attempts {
        out.extend(get(1 + 2 * i, "app.test"));
        out.extend(reset(1 + 2 * i, CANCEL));
    }
    let _ = c.write_all(&out).await;
    let mut goaway = None;
    let read_all = async {
        while let Some((kind, _, _, payload)) = read(&mut c).await {
            if kind == GOAWAY {
                goaway = Some(code(&payload, 4));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the attacking connection is closed");
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "GOAWAY reason");
    // A request of our own, answered after the attack: whatever the proxy was going to
    // forward of it has had a full round trip to arrive. It is the one request subtracted.
    still_serves_h2(proxy.addr).await;
    let reached = served.load(Ordering::SeqCst) - before - 1;
    eprintln!("rapid reset: {reached} of {attempts} cancelled requests reached the backend");
    assert!(
        reached < 100,
        "{reached} of {attempts} cancelled requests reached the backend"
    );
}

/// The proxy still answers HTTP/2 on a fresh connection.
async fn still_serves_h2(addr: SocketAddr) {
    let h2 = support::h2c_connect(addr).await;
    assert_eq!(h2.get("app.test", "/").await.unwrap().status, 200);
}
