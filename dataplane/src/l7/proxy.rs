//! The request path: pingora's [`ProxyHttp`] phases over the current [`State`].
//!
//! Per request: load the state once (`new_ctx`), route by host and path (`request_filter`:
//! 404 without route, 503 without endpoints), pick an endpoint (`upstream_peer`; one retry on
//! another endpoint when connecting fails), set forwarding headers, strip hop-by-hop headers,
//! and account for the request (`logging`). Upstream timeouts answer 504, other upstream
//! failures 502.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_model::{Route, UpstreamTarget};
use http::header::{self, HeaderName};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use crate::config::ProxyConfig;
use crate::l7::balance::InFlight;
use crate::l7::conn;
use crate::l7::resolve::Resolver;
use crate::state::{Router, State};
use crate::telemetry::{self, LIMIT_REJECTIONS};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Where ACME HTTP-01 challenges are answered; never redirected to HTTPS.
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// Attempts per request: the first endpoint and one other when connecting fails.
const MAX_ATTEMPTS: usize = 2;

/// ferry's HTTP proxy logic, shared by every connection of a listener.
#[derive(Debug)]
pub struct FerryProxy {
    router: Arc<Router>,
    config: ProxyConfig,
    resolver: Resolver,
}

impl FerryProxy {
    /// The limit a request head breaks, if any: status, limit name, response body.
    fn over_limit(&self, req: &RequestHeader) -> Option<(u16, &'static str, &'static str)> {
        let limits = &self.config.limits;
        const HEADERS: &str = "431 Request Header Fields Too Large\n";
        if req.headers.len() > limits.max_request_headers {
            return Some((431, "headers", HEADERS));
        }
        let size = req.raw_path().len()
            + req
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if size > limits.max_request_header_bytes {
            return Some((431, "headers", HEADERS));
        }
        let declared = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (declared, limits.max_body_bytes) {
            (Some(len), Some(max)) if len > max => Some((413, "body", "413 Content Too Large\n")),
            _ => None,
        }
    }

    /// Records a failure of the endpoint the request is on, ejecting it after a run.
    fn endpoint_failed(&self, ctx: &RequestCtx) {
        let (Some(in_flight), Some(route)) = (&ctx.in_flight, &ctx.route) else {
            return;
        };
        if let Some(time) = in_flight.stats().record_failure() {
            telemetry::EJECTIONS
                .with_label_values(&[&*route.upstream.name])
                .inc();
            tracing::warn!(
                upstream = %route.upstream.name,
                endpoint = %in_flight.stats().addr,
                ejected_for = ?time,
                "endpoint ejected after consecutive failures"
            );
        }
    }

    pub fn new(router: Arc<Router>, config: ProxyConfig) -> Self {
        telemetry::init();
        FerryProxy {
            router,
            config,
            resolver: Resolver::default(),
        }
    }
}

/// What one request carries through the phases.
#[derive(Debug)]
pub struct RequestCtx {
    started: Instant,
    state: Option<Arc<State>>,
    route: Option<Arc<Route>>,
    /// Endpoints tried so far, in order.
    tried: Vec<SocketAddr>,
    /// Whether an endpoint not yet tried remains for a retry.
    more_candidates: bool,
    in_flight: Option<InFlight>,
    upstream_started: Option<Instant>,
    /// A response ferry wrote itself, and why (for the access log).
    local_reply: Option<&'static str>,
    /// The client connection is TLS.
    tls: bool,
    /// Request body bytes received so far (for the body size limit).
    body_bytes: u64,
}

/// Plain-text responses ferry answers itself.
async fn reply(session: &mut Session, status: u16, body: &'static str) -> Result<()> {
    reply_with(session, status, body, None).await
}

/// A plain-text response with one more header (a redirect's `Location`).
async fn reply_with(
    session: &mut Session,
    status: u16,
    body: &'static str,
    extra: Option<(HeaderName, String)>,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    if let Some((name, value)) = extra {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
            .await?;
    }
    Ok(())
}

/// The status a failed proxy attempt answers with.
fn error_status(e: &Error) -> u16 {
    use ErrorType::*;
    match (e.etype(), e.esource()) {
        (HTTPStatus(code), _) => *code,
        (ConnectTimedout | ReadTimedout | WriteTimedout, ErrorSource::Upstream) => 504,
        (_, ErrorSource::Upstream) => 502,
        // The client went away: nobody to answer.
        (WriteError | ReadError | ConnectionClosed, ErrorSource::Downstream) => 0,
        (ReadTimedout, ErrorSource::Downstream) => 408,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "400 Bad Request\n",
        408 => "408 Request Timeout\n",
        413 => "413 Content Too Large\n",
        502 => "502 Bad Gateway\n",
        504 => "504 Gateway Timeout\n",
        _ => "500 Internal Server Error\n",
    }
}

/// The authority the client addressed: the request target's (HTTP/2 `:authority`, HTTP/1
/// absolute-form) or else the Host header.
fn authority(req: &RequestHeader) -> &str {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr()?.as_inet().map(|a| a.ip())
}

/// Removes what RFC 9110 §7.6.1 says must not be forwarded from a response: `Connection`, the
/// fields it names, and the legacy `Keep-Alive` and `Proxy-Connection`. A 101 keeps them: the
/// upgrade needs `Connection: upgrade` and `Upgrade`.
fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let nominated: Vec<String> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in nominated {
        resp.remove_header(&name);
    }
    for name in ["connection", "keep-alive", "proxy-connection", "upgrade"] {
        resp.remove_header(name);
    }
}

impl FerryProxy {
    /// Sets `X-Forwarded-*` and `X-Real-IP` on the upstream request. Unless clients are
    /// trusted, what they sent is replaced, so a backend can rely on the values.
    fn set_forwarded_headers(
        &self,
        session: &Session,
        tls: bool,
        req: &mut RequestHeader,
    ) -> Result<()> {
        let trust = self.config.trust_forwarded_headers;
        let client = client_ip(session).map(|ip| ip.to_string());
        let keep = |req: &RequestHeader, name: &HeaderName| trust && req.headers.contains_key(name);

        if let Some(client) = &client {
            let xff = match req.headers.get(&X_FORWARDED_FOR).map(|v| v.to_str()) {
                Some(Ok(prior)) if trust => format!("{prior}, {client}"),
                _ => client.clone(),
            };
            req.insert_header(X_FORWARDED_FOR, xff)?;
            if !keep(req, &X_REAL_IP) {
                req.insert_header(X_REAL_IP, client.as_str())?;
            }
        }
        if !keep(req, &X_FORWARDED_HOST) {
            let host = authority(session.req_header()).to_owned();
            if !host.is_empty() {
                req.insert_header(X_FORWARDED_HOST, host)?;
            }
        }
        if !keep(req, &X_FORWARDED_PORT)
            && let Some(port) = session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port())
        {
            req.insert_header(X_FORWARDED_PORT, port.to_string())?;
        }
        if !keep(req, &X_FORWARDED_PROTO) {
            req.insert_header(X_FORWARDED_PROTO, if tls { "https" } else { "http" })?;
        }
        Ok(())
    }

    /// Where a plain-HTTP request is redirected to: the same host and request target over
    /// HTTPS. `None` without a host to redirect to. ACME HTTP-01 challenges are answered over
    /// plain HTTP (certificate issuers must reach them before a certificate exists).
    fn https_location(&self, req: &RequestHeader) -> Option<String> {
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        if req.uri.path().starts_with(ACME_CHALLENGE_PATH) {
            return None;
        }
        let authority = authority(req);
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        if host.is_empty() {
            return None;
        }
        Some(match self.config.https_port {
            443 => format!("https://{host}{target}"),
            port => format!("https://{host}:{port}{target}"),
        })
    }

    fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, false, String::new());
        let options = &mut peer.options;
        options.connection_timeout = Some(self.config.connect_timeout);
        options.read_timeout = Some(self.config.read_timeout);
        options.write_timeout = Some(self.config.write_timeout);
        options.idle_timeout = Some(self.config.idle_timeout);
        peer
    }
}

#[async_trait]
impl ProxyHttp for FerryProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            state: self.router.current(),
            route: None,
            tried: Vec::new(),
            more_candidates: false,
            in_flight: None,
            upstream_started: None,
            local_reply: None,
            tls: false,
            body_bytes: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        conn::request_started();
        if let Some((status, limit, body)) = self.over_limit(session.req_header()) {
            LIMIT_REJECTIONS.with_label_values(&[limit]).inc();
            ctx.local_reply = Some(limit);
            session.set_keepalive(None);
            reply(session, status, body).await?;
            return Ok(true);
        }
        let Some(state) = &ctx.state else {
            ctx.local_reply = Some("not ready");
            reply(
                session,
                503,
                "503 Service Unavailable: no configuration yet\n",
            )
            .await?;
            return Ok(true);
        };
        let req = session.req_header();
        let route = state
            .snapshot
            .routes
            .lookup(authority(req), req.uri.path())
            .cloned();
        let Some(route) = route else {
            ctx.local_reply = Some("no route");
            reply(session, 404, "404 Not Found\n").await?;
            return Ok(true);
        };
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if !ctx.tls
            && route.https.redirect
            && let Some(location) = self.https_location(session.req_header())
        {
            ctx.route = Some(route);
            ctx.local_reply = Some("https redirect");
            // 308 keeps the method and body, unlike 301.
            let location = Some((header::LOCATION, location));
            reply_with(session, 308, "308 Permanent Redirect\n", location).await?;
            return Ok(true);
        }
        let no_endpoints =
            matches!(&route.upstream.target, UpstreamTarget::Endpoints(e) if e.is_empty());
        ctx.route = Some(route);
        if no_endpoints {
            ctx.local_reply = Some("no endpoints");
            reply(session, 503, "503 Service Unavailable: no endpoints\n").await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(state), Some(route)) = (&ctx.state, &ctx.route) else {
            return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
        };
        let addr =
            match &route.upstream.target {
                UpstreamTarget::Endpoints(_) => {
                    let balancer = &state.balancers[route.upstream.index];
                    let Some(endpoint) = balancer.select(&ctx.tried) else {
                        return Err(Error::new_up(ErrorType::ConnectNoRoute).more_context(
                            format!("no endpoint of {} left to try", route.upstream.name),
                        ));
                    };
                    let addr = endpoint.addr;
                    ctx.in_flight = Some(InFlight::new(endpoint.clone()));
                    ctx.more_candidates = balancer
                        .endpoints()
                        .iter()
                        .any(|e| e.addr != addr && !ctx.tried.contains(&e.addr));
                    addr
                }
                UpstreamTarget::ExternalName { host, port } => {
                    let addrs = self.resolver.resolve(host, *port).await.map_err(|e| {
                        Error::because(ErrorType::ConnectNoRoute, format!("resolving {host}"), e)
                            .into_up()
                    })?;
                    let mut untried = addrs.iter().filter(|a| !ctx.tried.contains(a));
                    let Some(&addr) = untried.next() else {
                        return Err(Error::new_up(ErrorType::ConnectNoRoute)
                            .more_context(format!("no address of {host} left to try")));
                    };
                    ctx.more_candidates = untried.next().is_some();
                    addr
                }
            };
        ctx.tried.push(addr);
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(self.peer(addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(route) = &ctx.route {
            telemetry::UPSTREAM_CONNECT_ERRORS
                .with_label_values(&[&*route.upstream.name, e.etype().as_str()])
                .inc();
        }
        self.endpoint_failed(ctx);
        ctx.in_flight = None;
        // Nothing reached the endpoint, so any method may go to another one.
        e.set_retry(ctx.more_candidates && ctx.tried.len() < MAX_ATTEMPTS);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("endpoint {peer}"));
        let stale = matches!(e.retry, pingora_error::RetryType::ReusedOnly) && client_reused;
        if stale {
            // A pooled connection the endpoint had closed: not the endpoint's fault, and it
            // may be tried again on a fresh connection.
            ctx.tried.pop();
        } else {
            self.endpoint_failed(ctx);
        }
        ctx.in_flight = None;
        // Idempotent requests (whose body, if any, is still buffered) go to another endpoint
        // once; others could have been acted on and are not repeated.
        let idempotent = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        e.set_retry(idempotent && ctx.tried.len() < MAX_ATTEMPTS && (ctx.more_candidates || stale));
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.set_forwarded_headers(session, ctx.tls, upstream_request)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started.take() {
            let latency = started.elapsed();
            telemetry::UPSTREAM_LATENCY.observe(latency.as_secs_f64());
            if let Some(in_flight) = &ctx.in_flight {
                in_flight.stats().observe(latency);
            }
        }
        // Gateway errors count against the endpoint; anything else is an answer.
        if matches!(upstream_response.status.as_u16(), 502..=504) {
            self.endpoint_failed(ctx);
        } else if let Some(in_flight) = &ctx.in_flight {
            in_flight.stats().record_success();
        }
        strip_response_hop_by_hop(upstream_response);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.tls
            && let Some(hsts) = ctx.route.as_ref().and_then(|r| r.https.hsts.as_deref())
            && !response
                .headers
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        {
            response.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let status = error_status(e);
        if status > 0 && session.response_written().is_none() {
            // The connection is not reused after a failure: say so, or a client would send
            // its next request into a closing connection.
            session.set_keepalive(None);
            reply(session, status, status_text(status))
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "could not send the error response");
                });
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // The access log line of the request carries the error.
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        true
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        match self.config.limits.max_body_bytes {
            // A body that announced no length (chunked, HTTP/2) and grew past the limit.
            Some(max) if ctx.body_bytes > max => {
                LIMIT_REJECTIONS.with_label_values(&["body"]).inc();
                ctx.local_reply = Some("body");
                Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit")
            }
            _ => Ok(()),
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        conn::request_done();
        ctx.in_flight = None;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        let (namespace, ingress, service) = match &ctx.route {
            Some(r) => (
                &*r.ingress.namespace,
                &*r.ingress.name,
                &*r.upstream.service.name,
            ),
            None => ("", "", ""),
        };
        telemetry::REQUESTS
            .with_label_values(&[namespace, ingress, service, telemetry::status_class(status)])
            .inc();
        telemetry::REQUEST_DURATION
            .with_label_values(&[namespace, ingress, service])
            .observe(elapsed.as_secs_f64());
        access_log(session, ctx, status, elapsed, e);
    }
}

fn access_log(
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    elapsed: Duration,
    e: Option<&Error>,
) {
    let req = session.req_header();
    let upstream = ctx.route.as_ref().map(|r| &*r.upstream.name);
    let endpoint = ctx.tried.last().map(tracing::field::display);
    let client = client_ip(session).map(tracing::field::display);
    let error = e.map(tracing::field::display);
    macro_rules! log_at {
        ($level:expr) => {
            tracing::event!(
                target: "ferry::access",
                $level,
                client,
                method = %req.method,
                host = authority(req),
                uri = %req.uri,
                status,
                duration_ms = elapsed.as_secs_f64() * 1e3,
                upstream,
                endpoint,
                attempts = ctx.tried.len(),
                reply = ctx.local_reply,
                error,
            )
        };
    }
    if status >= 500 || (status == 0 && e.is_some()) {
        log_at!(tracing::Level::WARN);
    } else {
        log_at!(tracing::Level::INFO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_gateway_statuses() {
        use ErrorType::*;
        assert_eq!(error_status(&Error::new_up(ConnectTimedout)), 504);
        assert_eq!(error_status(&Error::new_up(ReadTimedout)), 504);
        assert_eq!(error_status(&Error::new_up(ConnectRefused)), 502);
        assert_eq!(error_status(&Error::new_up(ConnectNoRoute)), 502);
        assert_eq!(error_status(&Error::new_up(InvalidHTTPHeader)), 502);
        assert_eq!(error_status(&Error::new_down(ConnectionClosed)), 0);
        assert_eq!(error_status(&Error::new_down(InvalidHTTPHeader)), 400);
        assert_eq!(error_status(&Error::new(HTTPStatus(413))), 413);
        assert_eq!(error_status(&Error::new(InternalError)), 500);
    }

    #[test]
    fn response_hop_by_hop_headers_are_removed() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("connection", "close, x-private")
            .unwrap();
        resp.insert_header("x-private", "secret").unwrap();
        resp.insert_header("keep-alive", "timeout=5").unwrap();
        resp.insert_header("proxy-connection", "keep-alive")
            .unwrap();
        resp.insert_header("x-kept", "yes").unwrap();
        strip_response_hop_by_hop(&mut resp);
        for gone in ["connection", "x-private", "keep-alive", "proxy-connection"] {
            assert!(resp.headers.get(gone).is_none(), "{gone} should be gone");
        }
        assert_eq!(resp.headers.get("x-kept").unwrap(), "yes");

        let mut upgrade = ResponseHeader::build(101, None).unwrap();
        upgrade.insert_header("connection", "upgrade").unwrap();
        upgrade.insert_header("upgrade", "websocket").unwrap();
        strip_response_hop_by_hop(&mut upgrade);
        assert_eq!(upgrade.headers.get("upgrade").unwrap(), "websocket");
    }
}
