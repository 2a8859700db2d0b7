//! The admin server: `/healthz` (the process answers), `/readyz` (a snapshot is being served)
//! and `/metrics` (Prometheus text format). Plain hyper, separate from the proxy listeners so
//! probes and scrapes work whatever the proxy is doing.

use std::convert::Infallible;
use std::sync::Arc;

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

/// Answers one admin request.
fn handle(router: &Router, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            "text/plain; charset=utf-8".parse().expect("valid"),
        );
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if router.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no configuration served yet\n",
        ),
        "/metrics" => {
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
            "not found: try /healthz, /readyz or /metrics\n",
        ),
    }
}

/// Serves admin requests on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Arc<Router>,
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
        let router = router.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = handle(&router, &req);
                async move { Ok::<_, Infallible>(resp) }
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
    router: Arc<Router>,
}

impl AdminService {
    pub fn new(listener: std::net::TcpListener, router: Arc<Router>) -> Self {
        AdminService {
            listener: std::sync::Mutex::new(Some(listener)),
            router,
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
            Ok(listener) => serve(listener, self.router.clone(), shutdown).await,
            Err(e) => tracing::error!(error = %e, "admin server could not start"),
        }
    }
}
