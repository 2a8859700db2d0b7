//! The admin server: `/healthz` (the process answers), `/readyz` (a snapshot is being served
//! and the proxy listeners accept connections) and `/metrics` (Prometheus text format). Plain
//! hyper, separate from the proxy listeners so probes and scrapes work whatever the proxy is
//! doing.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::state::Router;
use crate::telemetry;

/// Whether ferry can serve: a snapshot is in place and every proxy listener accepts.
///
/// pingora opens listeners inside its services without telling when they are bound, so the
/// first readiness checks connect to them; once each has answered, only the snapshot is
/// checked.
#[derive(Debug)]
pub struct Readiness {
    router: Arc<Router>,
    listeners: Vec<SocketAddr>,
    listening: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// `listeners` are the proxy's listening addresses (unspecified addresses are reached
    /// through loopback).
    pub fn new(router: Arc<Router>, listeners: Vec<SocketAddr>) -> Self {
        Readiness {
            router,
            listeners: listeners.into_iter().map(reachable).collect(),
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// From now on, not ready: ferry is shutting down (load balancers should stop sending).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready, else why not.
    pub async fn check(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("shutting down".to_owned());
        }
        if !self.router.is_ready() {
            return Err("no configuration served yet".to_owned());
        }
        if !self.listening.load(Ordering::Relaxed) {
            for addr in &self.listeners {
                let connect = tokio::net::TcpStream::connect(addr);
                match tokio::time::timeout(Duration::from_secs(1), connect).await {
                    Ok(Ok(_)) => {}
                    _ => {
                        return Err(format!(
                            "the proxy does not accept connections on {addr} yet"
                        ));
                    }
                }
            }
            self.listening.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Answers one admin request.
async fn handle(readiness: &Readiness, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            "text/plain; charset=utf-8".parse().expect("valid"),
        );
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match readiness.check().await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            if let Some(state) = readiness.router.current() {
                telemetry::observe_certificates(&state.snapshot.certs);
            }
            let mut resp = Response::new(Full::new(Bytes::from(telemetry::render())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8"
                    .parse()
                    .expect("valid"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

/// Serves admin requests on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Arc<Readiness>,
    mut shutdown: ShutdownWatch,
) {
    telemetry::init();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin server: accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return } else { continue }
            }
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let readiness = readiness.clone();
                async move { Ok::<_, Infallible>(handle(&readiness, &req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// The admin server as a pingora background service, on a listener bound before the server
/// started (so a port already in use is reported at once, not from inside a service).
#[derive(Debug)]
pub struct AdminService {
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    readiness: Arc<Readiness>,
}

impl AdminService {
    pub fn new(listener: std::net::TcpListener, readiness: Arc<Readiness>) -> Self {
        AdminService {
            listener: std::sync::Mutex::new(Some(listener)),
            readiness,
        }
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(listener) = listener else { return };
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener));
        match listener {
            Ok(listener) => serve(listener, self.readiness.clone(), shutdown).await,
            Err(e) => tracing::error!(error = %e, "admin server could not start"),
        }
    }
}
