//! `ferry demo`: the quickstart a newcomer runs first. It serves the example manifests with
//! `ferry run`'s code, and starts an echo backend on every loopback endpoint the manifests
//! list, so every route answers without a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::bail;
use async_trait::async_trait;
use ferry_controller::manifests;
use ferry_controller::translate::translate;
use ferry_dataplane::backend::Backend;
use ferry_model::{HostMatch, Route};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::{BackgroundService, background_service};

use crate::cli::DemoArgs;

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let settings = args.settings();
    let dir = &args.manifests;
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: run `ferry demo` from the repository root, or pass --manifests DIR",
            dir.display()
        );
    }
    // Errors are reported by `run`, which loads the same folder; here only what to start.
    let (backends, routes) = match manifests::load(dir) {
        Ok(loaded) => {
            let routes = translate(&loaded.index, &settings.controller)
                .snapshot
                .routes
                .routes()
                .to_vec();
            (loopback_endpoints(&loaded.index), routes)
        }
        Err(_) => (BTreeMap::new(), Vec::new()),
    };
    print_welcome(args, &routes, backends.len());
    let service = background_service("demo backends", DemoBackends(backends));
    crate::run::run(settings, vec![Box::new(service)])
}

/// Every endpoint address on loopback, with the name of its Service.
fn loopback_endpoints(index: &ferry_controller::index::Index) -> BTreeMap<SocketAddr, String> {
    let mut found = BTreeMap::new();
    for ((_, service), groups) in index.services_with_endpoints() {
        for group in groups {
            for port in &group.ports {
                for endpoint in &group.endpoints {
                    for ip in endpoint.addresses.iter().filter(|ip| ip.is_loopback()) {
                        found.insert(
                            SocketAddr::new(*ip, port.port),
                            format!("{service}@{ip}:{}", port.port),
                        );
                    }
                }
            }
        }
    }
    found
}

/// The commands to try, one per route: plain HTTP, or for HTTPS routes a verified HTTPS request
/// (with the demo CA when the folder has one) and the plain-HTTP redirect.
fn print_welcome(args: &DemoArgs, routes: &[std::sync::Arc<Route>], backends: usize) {
    let base = format!("http://{}", args.http_addr);
    let https_port = args.https_addr.port();
    let ca = args.manifests.join("demo-ca.crt");
    let trust = if ca.is_file() {
        format!("--cacert {} ", ca.display())
    } else {
        "-k ".to_owned()
    };
    let mut lines = Vec::new();
    for route in routes {
        let host = match &route.host {
            HostMatch::Exact(h) => Some(h.to_string()),
            HostMatch::Wildcard(suffix) => Some(format!("anything.{suffix}")),
            HostMatch::Any => None,
        };
        let path = route
            .path
            .as_ref()
            .map_or_else(|| "/some/where".to_owned(), ToString::to_string);
        let header = host
            .as_ref()
            .map(|h| format!("-H 'Host: {h}' "))
            .unwrap_or_default();
        let mut add = |line: String| {
            if !lines.contains(&line) {
                lines.push(line);
            }
        };
        match host.filter(|_| route.https.redirect) {
            Some(h) => {
                let ip = args.https_addr.ip();
                add(format!(
                    "  curl {trust}--resolve {h}:{https_port}:{ip} https://{h}:{https_port}{path}"
                ));
                add(format!("  curl -i {header}{base}{path}    # 308 to HTTPS"));
            }
            None => add(format!("  curl {header}{base}{path}")),
        }
    }
    println!(
        "\nferry demo: serving the manifests in {dir} on {base} and https://{https} with \
         {backends} demo backends.\n\n\
         Try:\n{lines}\n  curl -H 'Host: nowhere.example' {base}/          # no route: 404\n  \
         curl http://{admin}/metrics                # Prometheus metrics\n\n\
         Edit the files in {dir} while ferry runs: changes are served at once, and a broken\n\
         file is reported while the last good configuration keeps serving. Ctrl-C stops.\n",
        dir = args.manifests.display(),
        lines = lines.join("\n"),
        https = args.https_addr,
        admin = args.admin_addr,
    );
}

/// Echo backends on the manifests' loopback endpoints.
struct DemoBackends(BTreeMap<SocketAddr, String>);

#[async_trait]
impl BackgroundService for DemoBackends {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        for (addr, name) in &self.0 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tokio::spawn(Backend::new(name).serve(listener));
                }
                Err(e) => tracing::error!(%addr, error = %e, "demo backend cannot listen"),
            }
        }
        let _ = shutdown.changed().await;
    }
}
