//! Real parts for proxy tests: ferry's proxy on a loopback port the OS chose, echo backends,
//! snapshot builders, and HTTP clients (hyper for HTTP/1.1 and h2c, raw TCP when the test needs
//! to control every byte).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_dataplane::backend::{Backend, Echo};
use ferry_dataplane::{ProxyConfig, Router};
use ferry_model::{
    CertStore, Endpoint, HostMatch, HttpsPolicy, LoadBalance, ObjectRef, PathMatch, PathType,
    Route, RouteTable, Snapshot, SnapshotSink, TlsCertificate, Upstream, UpstreamTarget,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A proxy serving on loopback; stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The HTTPS listener, when started with one.
    pub tls_addr: Option<SocketAddr>,
    pub router: Arc<Router>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub fn start_proxy(config: ProxyConfig) -> Proxy {
    start_proxy_with(config, None)
}

/// A proxy with an HTTPS listener too; `fallback` answers handshakes the snapshot has no
/// certificate for.
pub fn start_proxy_tls(config: ProxyConfig, fallback: Arc<CertifiedKey>) -> Proxy {
    start_proxy_with(config, Some(fallback))
}

fn start_proxy_with(mut config: ProxyConfig, fallback: Option<Arc<CertifiedKey>>) -> Proxy {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    let https = fallback.map(|f| (bind(), f));
    let tls_addr = https.as_ref().map(|(l, _)| l.local_addr().unwrap());
    if let Some(tls) = tls_addr {
        config.https_port = tls.port();
    }
    let router = Router::new();
    let (tx, rx) = watch::channel(false);
    let r = router.clone();
    tokio::spawn(async move {
        ferry_dataplane::l7::serve(listener, https, r, config, rx)
            .await
            .unwrap();
    });
    Proxy {
        addr,
        tls_addr,
        router,
        shutdown: tx,
    }
}

/// Starts an echo backend on a loopback port; it runs until the test's runtime ends.
pub async fn start_backend(name: &str) -> SocketAddr {
    start(Backend::new(name)).await
}

pub async fn start(backend: Backend) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(backend.serve(listener));
    addr
}

/// An address where nothing listens: bound once by the OS, then released.
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Host, path, upstream index and HTTPS policy of a route.
type RouteSpec = (
    Option<&'static str>,
    Option<(&'static str, PathType)>,
    usize,
    HttpsPolicy,
);

/// Builds snapshots from a compact description.
#[derive(Default)]
pub struct SnapshotBuilder {
    routes: Vec<RouteSpec>,
    upstreams: Vec<Arc<Upstream>>,
    default: Option<usize>,
    certs: Vec<(HostMatch, Arc<TlsCertificate>)>,
}

impl SnapshotBuilder {
    pub fn upstream(&mut self, service: &str, endpoints: &[SocketAddr], lb: LoadBalance) -> usize {
        let target = UpstreamTarget::Endpoints(
            endpoints
                .iter()
                .map(|&addr| Endpoint {
                    addr,
                    node_name: None,
                })
                .collect(),
        );
        self.upstream_to(service, target, lb)
    }

    pub fn upstream_to(&mut self, service: &str, target: UpstreamTarget, lb: LoadBalance) -> usize {
        let index = self.upstreams.len();
        self.upstreams.push(Arc::new(Upstream {
            index,
            name: format!("default/{service}:80").into(),
            service: ObjectRef::new("default", service),
            load_balance: lb,
            target,
        }));
        index
    }

    pub fn route(
        &mut self,
        host: Option<&'static str>,
        path: &'static str,
        path_type: PathType,
        upstream: usize,
    ) -> &mut Self {
        self.routes.push((
            host,
            Some((path, path_type)),
            upstream,
            HttpsPolicy::default(),
        ));
        self
    }

    /// A route with an HTTPS policy (redirect, HSTS).
    pub fn route_https(
        &mut self,
        host: Option<&'static str>,
        path: &'static str,
        upstream: usize,
        https: HttpsPolicy,
    ) -> &mut Self {
        self.routes
            .push((host, Some((path, PathType::Prefix)), upstream, https));
        self
    }

    /// A certificate for a host pattern (`None`: the default certificate).
    pub fn certificate(&mut self, host: Option<&str>, cert: Arc<TlsCertificate>) -> &mut Self {
        self.certs.push((HostMatch::parse(host).unwrap(), cert));
        self
    }

    pub fn default_backend(&mut self, upstream: usize) -> &mut Self {
        self.default = Some(upstream);
        self
    }

    pub fn build(&self, generation: u64) -> Snapshot {
        let mut table = RouteTable::builder();
        let route = |host: Option<&str>, path: Option<(&str, PathType)>, u: usize, https| {
            Arc::new(Route {
                ingress: ObjectRef::new("default", "test-ingress"),
                host: HostMatch::parse(host).unwrap(),
                path: path.map(|(p, t)| PathMatch::parse(p, t, true).unwrap()),
                upstream: self.upstreams[u].clone(),
                https,
            })
        };
        for (host, path, u, https) in &self.routes {
            table.add(route(*host, *path, *u, https.clone())).unwrap();
        }
        if let Some(u) = self.default {
            table
                .set_default(route(None, None, u, HttpsPolicy::default()))
                .unwrap();
        }
        let mut certs = CertStore::default();
        for (host, cert) in &self.certs {
            certs.get_or_insert_with(host, || cert.clone());
        }
        Snapshot {
            generation,
            routes: table.build(),
            upstreams: self.upstreams.clone(),
            certs,
            node_name: None,
            services: Default::default(),
        }
    }

    pub fn publish(&self, router: &Router, generation: u64) {
        router.publish(self.build(generation));
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http1_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 connection by prior knowledge, addressing requests to any `:authority`.
#[derive(Clone)]
pub struct H2c(hyper::client::conn::http2::SendRequest<Full<Bytes>>);

pub async fn h2c_connect(addr: SocketAddr) -> H2c {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    H2c(sender)
}

impl H2c {
    pub async fn get(&self, authority: &str, path: &str) -> anyhow::Result<Reply> {
        let req = http::Request::get(format!("http://{authority}{path}")).body(Full::default())?;
        let mut sender = self.0.clone();
        let resp =
            tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await??;
        reply(resp).await
    }
}

pub struct Reply {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn echo(&self) -> Echo {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not an echo ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

pub async fn send(client: &HttpClient, req: http::Request<Full<Bytes>>) -> anyhow::Result<Reply> {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
    reply(resp).await
}

async fn reply(resp: http::Response<hyper::body::Incoming>) -> anyhow::Result<Reply> {
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        version,
        headers,
        body,
    })
}

pub fn get(proxy: SocketAddr, host: &str, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://{proxy}{path}"))
        .header("host", host)
        .body(Full::default())
        .unwrap()
}

/// Sends raw bytes on a new connection and returns everything read until the server closes.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("server closes within 10s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for `condition` with bounded patience, like linkerd2-proxy's `assert_eventually!`.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        if condition().await {
            return;
        }
    }
    panic!("not within 10s: {what}");
}

/// A test certificate authority issuing certificates for any names.
pub struct Pki {
    ca: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate issued by [`Pki`], in the forms tests need.
pub struct Issued {
    /// The chain (leaf, then CA) as a `tls.crt` holds it.
    pub chain_pem: String,
    /// The key as PKCS#8 PEM.
    pub key_pem: String,
    pub leaf_der: Vec<u8>,
    pub certified: Arc<CertifiedKey>,
}

impl Default for Pki {
    fn default() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferry test CA");
        let ca = params.self_signed(&key).unwrap();
        Pki { ca, key }
    }
}

impl Pki {
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn issue(&self, names: &[&str]) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let leaf = params.signed_by(&key, &self.ca, &self.key).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(
            vec![leaf.der().clone(), self.ca.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            &provider,
        )
        .unwrap();
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.ca.pem()),
            key_pem: key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
            certified: Arc::new(certified),
        }
    }
}

impl Issued {
    /// As the model holds it, from Secret `default/secret`.
    pub fn tls_certificate(&self, secret: &str, names: &[&str]) -> Arc<TlsCertificate> {
        Arc::new(TlsCertificate {
            secret: ObjectRef::new("default", secret),
            key: self.certified.clone(),
            not_after: 4_102_444_800,
            names: names.iter().map(|n| n.to_string()).collect(),
        })
    }
}

/// Accepts any server certificate: the tests check which one was presented themselves.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to `addr` with the given SNI (none if `None`) and ALPN protocols; also
/// returns the leaf certificate the server presented.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&str],
) -> anyhow::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = sni.is_some();
    let name = rustls_pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned())?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((stream, leaf))
}

/// An HTTP connection over TLS: HTTP/2 when the server chose it by ALPN, else HTTP/1.1.
#[derive(Clone)]
pub enum HttpsConn {
    H1(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Connects over TLS offering `alpn`; returns the connection and the presented leaf.
pub async fn https_connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&str],
) -> anyhow::Result<(HttpsConn, Vec<u8>)> {
    let (stream, leaf) = tls_connect(addr, Some(sni), alpn).await?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let conn = if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        HttpsConn::H2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        HttpsConn::H1(Arc::new(tokio::sync::Mutex::new(sender)))
    };
    Ok((conn, leaf))
}

impl HttpsConn {
    pub async fn get(&self, host: &str, path: &str) -> anyhow::Result<Reply> {
        let resp = match self {
            HttpsConn::H2(sender) => {
                let req =
                    http::Request::get(format!("https://{host}{path}")).body(Full::default())?;
                sender.clone().send_request(req).await?
            }
            HttpsConn::H1(sender) => {
                let req = http::Request::get(path)
                    .header("host", host)
                    .body(Full::default())?;
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(req).await?
            }
        };
        reply(resp).await
    }
}

/// The lines of an admin server's `/metrics` that start with `prefix` (none if it does not
/// answer).
pub async fn metric_lines(admin: SocketAddr, prefix: &str) -> Vec<String> {
    match send(&http1_client(), get(admin, "admin", "/metrics")).await {
        Ok(r) => String::from_utf8_lossy(&r.body)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}
