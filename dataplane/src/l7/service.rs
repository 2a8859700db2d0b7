//! The pingora listening service that runs [`FerryProxy`] on a plain-HTTP address, with
//! HTTP/2 by prior knowledge (h2c) and a count of open client connections.

use std::os::fd::IntoRawFd;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::{HttpServerOptions, ServerApp};
use pingora_core::protocols::Stream;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Fds, ShutdownWatch};
use pingora_core::services::Service as _;
use pingora_core::services::listening::Service;
use pingora_proxy::{HttpProxy, http_proxy};

use crate::config::ProxyConfig;
use crate::l7::proxy::FerryProxy;
use crate::state::Router;
use crate::telemetry::ACTIVE_CONNECTIONS;

/// The HTTP listener service, ready to be added to a pingora `Server` (or started directly).
pub type HttpService = Service<CountConnections<HttpProxy<FerryProxy>>>;

/// Builds the plain-HTTP proxy service listening on `addr`.
pub fn http_service(
    server_conf: &Arc<ServerConf>,
    router: Arc<Router>,
    config: ProxyConfig,
    addr: &str,
) -> HttpService {
    let mut proxy = http_proxy(server_conf, FerryProxy::new(router, config));
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    proxy.server_options = Some(options);
    let mut service = Service::new("ferry http".to_owned(), CountConnections(Arc::new(proxy)));
    service.add_tcp(addr);
    service
}

/// Runs the HTTP proxy on a listener bound by the caller, outside a pingora `Server`, until
/// `shutdown` turns true. For tests and embedding: the caller can bind port 0 and knows the
/// port before the proxy starts.
pub async fn serve_http(
    listener: std::net::TcpListener,
    router: Arc<Router>,
    config: ProxyConfig,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?.to_string();
    // tokio drives the socket pingora builds from the fd: it must not block.
    listener.set_nonblocking(true)?;
    // pingora adopts a listening socket found under its address in the fd table, as it does
    // for sockets handed over by a graceful upgrade.
    let mut fds = Fds::new();
    fds.add(addr.clone(), listener.into_raw_fd());
    let mut service = http_service(&Arc::new(ServerConf::default()), router, config, &addr);
    service
        .start_service(Some(Arc::new(parking_lot::Mutex::new(fds))), shutdown, 1)
        .await;
    Ok(())
}

/// Keeps `ferry_http_active_connections` while a connection is served.
#[derive(Debug)]
pub struct CountConnections<A>(Arc<A>);

struct Open;

impl Open {
    fn new() -> Self {
        ACTIVE_CONNECTIONS.inc();
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        ACTIVE_CONNECTIONS.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for CountConnections<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // pingora calls this again for each reuse of a keep-alive connection; between two
        // calls the connection is not counted for an instant, which a gauge can bear.
        let _open = Open::new();
        self.0.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}
