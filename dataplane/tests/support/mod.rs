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
    Endpoint, HostMatch, LoadBalance, ObjectRef, PathMatch, PathType, Route, RouteTable, Snapshot,
    SnapshotSink, Upstream, UpstreamTarget,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A proxy serving on loopback; stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub router: Arc<Router>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub fn start_proxy(config: ProxyConfig) -> Proxy {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let router = Router::new();
    let (tx, rx) = watch::channel(false);
    let r = router.clone();
    tokio::spawn(async move {
        ferry_dataplane::l7::serve_http(listener, r, config, rx)
            .await
            .unwrap();
    });
    Proxy {
        addr,
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

/// Host, path and upstream index of a route.
type RouteSpec = (
    Option<&'static str>,
    Option<(&'static str, PathType)>,
    usize,
);

/// Builds snapshots from a compact description.
#[derive(Default)]
pub struct SnapshotBuilder {
    routes: Vec<RouteSpec>,
    upstreams: Vec<Arc<Upstream>>,
    default: Option<usize>,
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
        self.routes.push((host, Some((path, path_type)), upstream));
        self
    }

    pub fn default_backend(&mut self, upstream: usize) -> &mut Self {
        self.default = Some(upstream);
        self
    }

    pub fn build(&self, generation: u64) -> Snapshot {
        let mut table = RouteTable::builder();
        let route = |host: Option<&str>, path: Option<(&str, PathType)>, u: usize| {
            Arc::new(Route {
                ingress: ObjectRef::new("default", "test-ingress"),
                host: HostMatch::parse(host).unwrap(),
                path: path.map(|(p, t)| PathMatch::parse(p, t, true).unwrap()),
                upstream: self.upstreams[u].clone(),
            })
        };
        for &(host, path, u) in &self.routes {
            table.add(route(host, path, u)).unwrap();
        }
        if let Some(u) = self.default {
            table.set_default(route(None, None, u)).unwrap();
        }
        Snapshot {
            generation,
            routes: table.build(),
            upstreams: self.upstreams.clone(),
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
