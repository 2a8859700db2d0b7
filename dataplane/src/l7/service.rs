//! The pingora listening service that runs [`FerryProxy`]: a plain-HTTP listener (HTTP/1.1 and
//! h2c by prior knowledge) and optionally an HTTPS listener (TLS 1.2 and 1.3 by rustls, ALPN h2
//! and http/1.1, certificates chosen per handshake by [`CertResolver`]), behind a [`Guard`]
//! that counts and limits client connections.

use std::os::fd::IntoRawFd;
use std::sync::Arc;

use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::protocols::http::v2::server::default_h2_options;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Fds, ShutdownWatch};
use pingora_core::services::Service as _;
use pingora_core::services::listening::Service;
use pingora_proxy::{HttpProxy, http_proxy};
use rustls::sign::CertifiedKey;

use crate::config::ProxyConfig;
use crate::l7::conn::Guard;
use crate::l7::proxy::FerryProxy;
use crate::l7::tls::CertResolver;
use crate::state::Router;

/// The proxy service, ready to be added to a pingora `Server` (or started directly).
pub type HttpService = Service<Guard<HttpProxy<FerryProxy>>>;

/// The HTTPS listener: where, and the certificate for handshakes the snapshot has none for.
#[derive(Debug, Clone)]
pub struct Https {
    pub addr: String,
    pub fallback: Arc<CertifiedKey>,
}

/// Streams a client may open and reset before ferry has served them, per connection.
const H2_MAX_PENDING_RESETS: usize = 20;

/// Builds the proxy service listening for plain HTTP on `http_addr`, and for HTTPS if asked.
pub fn proxy_service(
    server_conf: &Arc<ServerConf>,
    router: Arc<Router>,
    config: ProxyConfig,
    http_addr: &str,
    https: Option<Https>,
) -> pingora_error::Result<HttpService> {
    let limits = config.limits.clone();
    let mut proxy = http_proxy(server_conf, FerryProxy::new(router.clone(), config));
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    // Idle HTTP/2 connections close as idle HTTP/1 ones do.
    options.h2_idle_timeout = Some(limits.client_header_timeout);
    proxy.server_options = Some(options);
    // pingora's bounded defaults (header list size), with our stream limit. Rapid reset
    // (CVE-2023-44487): more than 20 streams opened and reset by the client before they were
    // served end the connection with GOAWAY ENHANCE_YOUR_CALM (the h2 crate's default, set
    // here so that it is visible and tested: hostile.rs).
    let mut h2 = default_h2_options();
    h2.max_concurrent_streams(limits.h2_max_concurrent_streams);
    h2.max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS);
    proxy.h2_options = Some(h2);
    let guard = Guard::new(Arc::new(proxy), limits, true);
    let mut service = Service::new("ferry http".to_owned(), guard);
    service.add_tcp(http_addr);
    if let Some(https) = https {
        // No certificate files: every handshake asks the resolver.
        let mut tls = TlsSettings::intermediate("", "")?;
        tls.set_cert_resolver(Arc::new(CertResolver::new(router, https.fallback)));
        tls.enable_h2();
        service.add_tls_with_settings(&https.addr, None, tls);
    }
    Ok(service)
}

/// Runs the proxy on listeners bound by the caller, outside a pingora `Server`, until
/// `shutdown` turns true. For tests and embedding: the caller can bind port 0 and knows the
/// ports before the proxy starts.
pub async fn serve(
    http: std::net::TcpListener,
    https: Option<(std::net::TcpListener, Arc<CertifiedKey>)>,
    router: Arc<Router>,
    config: ProxyConfig,
    shutdown: ShutdownWatch,
) -> std::io::Result<()> {
    // pingora adopts a listening socket found under its address in the fd table, as it does
    // for sockets handed over by a graceful upgrade.
    let mut fds = Fds::new();
    let mut adopt = |listener: std::net::TcpListener| -> std::io::Result<String> {
        let addr = listener.local_addr()?.to_string();
        // tokio drives the socket pingora builds from the fd: it must not block.
        listener.set_nonblocking(true)?;
        fds.add(addr.clone(), listener.into_raw_fd());
        Ok(addr)
    };
    let http_addr = adopt(http)?;
    let https = match https {
        Some((listener, fallback)) => Some(Https {
            addr: adopt(listener)?,
            fallback,
        }),
        None => None,
    };
    let conf = Arc::new(ServerConf::default());
    let mut service = proxy_service(&conf, router, config, &http_addr, https)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    service
        .start_service(Some(Arc::new(parking_lot::Mutex::new(fds))), shutdown, 1)
        .await;
    Ok(())
}
