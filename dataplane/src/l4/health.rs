//! `healthCheckNodePort`: for a `LoadBalancer` Service with `externalTrafficPolicy: Local`,
//! cloud load balancers ask each node whether it has local endpoints, and send traffic only to
//! those that say yes. Answered as kube-proxy answers: 200 with local endpoints, else 503, a
//! JSON body and the `X-Load-Balancing-Endpoint-Weight` header.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use ferry_model::{ObjectRef, ServiceTable};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Health {
    service: ObjectRef,
    local_endpoints: usize,
}

fn answer(health: &Health) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "service": { "namespace": &*health.service.namespace, "name": &*health.service.name },
        "localEndpoints": health.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = if health.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("valid"));
    h.insert("x-content-type-options", "nosniff".parse().expect("valid"));
    h.insert(
        "x-load-balancing-endpoint-weight",
        health.local_endpoints.to_string().parse().expect("digits"),
    );
    resp
}

/// One server per health-check port, following the Services.
#[derive(Debug, Default)]
pub(crate) struct HealthChecks {
    servers: HashMap<u16, (Arc<ArcSwap<Health>>, tokio::task::JoinHandle<()>)>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

impl HealthChecks {
    /// Starts, updates and stops servers for the table's health-check ports.
    pub(crate) fn update(&mut self, table: &ServiceTable) {
        let mut wanted: HashMap<u16, (ObjectRef, BTreeSet<std::net::Ipv4Addr>)> = HashMap::new();
        for s in &table.services {
            if let Some(port) = s.health_check_node_port {
                let entry = wanted
                    .entry(port)
                    .or_insert_with(|| (s.service.clone(), BTreeSet::new()));
                entry.1.extend(
                    s.external_backends
                        .iter()
                        .filter(|b| b.local)
                        .map(|b| *b.addr.ip()),
                );
            }
        }
        self.servers.retain(|port, (_, task)| {
            let keep = wanted.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, (service, pods)) in wanted {
            let health = Health {
                service,
                local_endpoints: pods.len(),
            };
            if let Some((shared, _)) = self.servers.get(&port) {
                shared.store(Arc::new(health));
                continue;
            }
            let listener = std::net::TcpListener::bind(("0.0.0.0", port))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std);
            match listener {
                Ok(listener) => {
                    let shared = Arc::new(ArcSwap::from_pointee(health));
                    let task = tokio::spawn(serve(listener, shared.clone()));
                    self.servers.insert(port, (shared, task));
                }
                Err(e) => tracing::error!(port, error = %e, "cannot serve healthCheckNodePort"),
            }
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, health: Arc<ArcSwap<Health>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let resp = answer(&health.load());
                async move { Ok::<_, Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
