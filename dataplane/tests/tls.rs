//! TLS termination end to end: real rustls clients (and `openssl s_client` for what rustls
//! clients cannot even attempt), certificates from the snapshot chosen per handshake.

mod support;

use std::process::Command;

use ferry_dataplane::ProxyConfig;
use ferry_dataplane::l7::self_signed_certificate;
use ferry_model::{HttpsPolicy, LoadBalance::RoundRobin, PathType::Prefix};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_follows_sni_exact_then_wildcard_then_default() {
    let pki = Pki::default();
    let (exact, wild, default) = (
        pki.issue(&["a.test"]),
        pki.issue(&["*.wild.test"]),
        pki.issue(&["default.test"]),
    );
    let fallback = self_signed_certificate().unwrap();
    let proxy = start_proxy_tls(ProxyConfig::default(), fallback.clone());
    let tls = proxy.tls_addr.unwrap();
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[web], RoundRobin);
    s.route(None, "/", Prefix, u)
        .certificate(Some("a.test"), exact.tls_certificate("a", &["a.test"]))
        .certificate(
            Some("*.wild.test"),
            wild.tls_certificate("wild", &["*.wild.test"]),
        );
    s.publish(&proxy.router, 1);

    let leaf =
        |sni: Option<&'static str>| async move { tls_connect(tls, sni, &[]).await.unwrap().1 };
    let generated = fallback.cert[0].to_vec();
    assert_eq!(leaf(Some("a.test")).await, exact.leaf_der);
    assert_eq!(
        leaf(Some("A.TEST")).await,
        exact.leaf_der,
        "SNI is case-insensitive"
    );
    assert_eq!(leaf(Some("x.wild.test")).await, wild.leaf_der);
    assert_eq!(
        leaf(Some("deeper.x.wild.test")).await,
        generated,
        "a wildcard covers one label"
    );
    assert_eq!(leaf(Some("unknown.test")).await, generated);
    assert_eq!(leaf(None).await, generated);

    // With a default certificate in the snapshot, it answers what nothing else does.
    s.certificate(None, default.tls_certificate("default", &["default.test"]));
    s.publish(&proxy.router, 2);
    assert_eq!(leaf(Some("unknown.test")).await, default.leaf_der);
    assert_eq!(leaf(None).await, default.leaf_der);
    assert_eq!(leaf(Some("a.test")).await, exact.leaf_der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_proxied_over_h2_and_http11_by_alpn() {
    let pki = Pki::default();
    let cert = pki.issue(&["shop.test"]);
    let proxy = start_proxy_tls(ProxyConfig::default(), self_signed_certificate().unwrap());
    let tls = proxy.tls_addr.unwrap();
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[web], RoundRobin);
    s.route(Some("shop.test"), "/", Prefix, u).certificate(
        Some("shop.test"),
        cert.tls_certificate("shop", &["shop.test"]),
    );
    s.publish(&proxy.router, 1);

    for (alpn, expect_h2) in [
        (&["h2", "http/1.1"][..], true),
        (&["http/1.1"][..], false),
        (&[][..], false),
    ] {
        let (conn, leaf) = https_connect(tls, "shop.test", alpn).await.unwrap();
        assert_eq!(leaf, cert.leaf_der);
        assert_eq!(matches!(conn, HttpsConn::H2(_)), expect_h2, "ALPN {alpn:?}");
        for i in 0..3 {
            let r = conn
                .get("shop.test", &format!("/cart/{i}?x=1"))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            let echo = r.echo();
            assert_eq!(echo.uri, format!("/cart/{i}?x=1"));
            assert_eq!(echo.headers["x-forwarded-proto"], "https");
            assert_eq!(echo.headers["x-forwarded-port"], tls.port().to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_with_308_and_https_gets_hsts() {
    let pki = Pki::default();
    let cert = pki.issue(&["secure.test"]);
    let proxy = start_proxy_tls(ProxyConfig::default(), self_signed_certificate().unwrap());
    let tls = proxy.tls_addr.unwrap();
    let web = start_backend("web").await;
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[web], RoundRobin);
    let hsts = HttpsPolicy {
        redirect: true,
        hsts: Some("max-age=31536000; includeSubDomains".into()),
    };
    s.route_https(Some("secure.test"), "/", u, hsts)
        .route_https(
            Some("plain.test"),
            "/",
            u,
            HttpsPolicy {
                redirect: false,
                hsts: Some("max-age=1".into()),
            },
        )
        .certificate(
            Some("secure.test"),
            cert.tls_certificate("secure", &["secure.test"]),
        );
    s.publish(&proxy.router, 1);

    let head = raw(proxy.addr, b"POST /pay?order=7 HTTP/1.1\r\nHost: secure.test:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    let location = format!(
        "location: https://secure.test:{}/pay?order=7\r\n",
        tls.port()
    );
    assert!(head.to_ascii_lowercase().contains(&location), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "no HSTS over plain HTTP: {head}"
    );

    // ACME HTTP-01 challenges stay on plain HTTP.
    let acme = send(
        &http1_client(),
        get(
            proxy.addr,
            "secure.test",
            "/.well-known/acme-challenge/token",
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (acme.status, acme.echo().uri.as_str()),
        (200, "/.well-known/acme-challenge/token")
    );
    // A route that does not redirect is served over plain HTTP, without HSTS.
    let plain = send(&http1_client(), get(proxy.addr, "plain.test", "/"))
        .await
        .unwrap();
    assert_eq!(plain.status, 200);
    assert!(!plain.headers.contains_key("strict-transport-security"));

    // Over HTTPS: served, with HSTS.
    let (conn, _) = https_connect(tls, "secure.test", &["h2"]).await.unwrap();
    let r = conn.get("secure.test", "/pay").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_12_and_13_are_spoken() {
    let proxy = start_proxy_tls(ProxyConfig::default(), self_signed_certificate().unwrap());
    let mut s = SnapshotBuilder::default();
    let u = s.upstream("web", &[dead_addr()], RoundRobin);
    s.route(None, "/", Prefix, u);
    s.publish(&proxy.router, 1);
    let addr = proxy.tls_addr.unwrap().to_string();
    let handshake = |version: &'static str| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            // SECLEVEL=0 lets the client offer TLS 1.1 at all, so a refusal is the server's.
            let out = Command::new("openssl")
                .args(["s_client", version, "-cipher", "DEFAULT@SECLEVEL=0"])
                .args(["-connect", &addr, "-servername", "x.test"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("openssl is installed by scripts/setup.sh");
            let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            text.into_owned()
        })
    };
    let accepted = |out: &str| out.contains("Cipher is ") && !out.contains("Cipher is (NONE)");
    let tls13 = handshake("-tls1_3").await.unwrap();
    assert!(accepted(&tls13) && tls13.contains("TLSv1.3"), "{tls13}");
    let tls12 = handshake("-tls1_2").await.unwrap();
    assert!(accepted(&tls12) && tls12.contains("TLSv1.2"), "{tls12}");
    let tls11 = handshake("-tls1_1").await.unwrap();
    assert!(
        !accepted(&tls11) && tls11.contains("SSL alert number"),
        "the server must refuse TLS 1.1: {tls11}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_expiry_is_exported() {
    let pki = Pki::default();
    let cert = pki.issue(&["a.test"]);
    let router = ferry_dataplane::Router::new();
    let mut s = SnapshotBuilder::default();
    s.certificate(Some("a.test"), cert.tls_certificate("a-tls", &["a.test"]));
    s.publish(&router, 1);
    let state = router.current().unwrap();
    ferry_dataplane::telemetry::observe_certificates(&state.snapshot.certs);
    let text = ferry_dataplane::telemetry::render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "ferry_tls_certificate_expiry_seconds{host=\"a.test\",secret=\"default/a-tls\"}",
            )
        })
        .unwrap_or_else(|| panic!("{text}"));
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((seconds - (4_102_444_800 - now)).abs() <= 2, "{line}");
}

/// A ClientHello declaring 16 MiB: the server refuses it from its header (rustls takes
/// handshake messages up to 64 KiB) instead of waiting to buffer it, and keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_client_hello_is_refused_from_its_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let proxy = start_proxy_tls(ProxyConfig::default(), self_signed_certificate().unwrap());
    let tls = proxy.tls_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(tls).await.unwrap();

    // One full handshake record (type 22, 16 KiB) starting a ClientHello (type 1) that
    // declares 0xFFFFFF bytes. Nothing more is sent: a server waiting for the rest would
    // answer nothing.
    let mut body = vec![1, 0xff, 0xff, 0xff, 3, 3];
    body.resize(16_384, 0x41);
    let mut record = vec![22, 3, 1];
    record.extend((body.len() as u16).to_be_bytes());
    record.extend(&body);
    s.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_end(&mut answer),
    );
    match read.await {
        Err(_) => panic!("no refusal within 5 s: the server is waiting for 16 MiB"),
        // A fatal alert record (type 21) then the close, or a reset.
        Ok(Ok(_)) => assert!(
            answer.is_empty() || answer[0] == 21,
            "expected a TLS alert, got {:?}",
            &answer[..answer.len().min(8)]
        ),
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }

    // Others are still served.
    let (_, leaf) = tls_connect(tls, Some("x.test"), &[]).await.unwrap();
    assert!(!leaf.is_empty());
}
