//! Settings of the data plane, parsed once at start by the binary and passed in as data.

use std::time::Duration;

/// How the L7 proxy talks to upstreams and treats what clients send.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Time to establish a TCP connection to an endpoint (nginx `proxy_connect_timeout`).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an upstream response; exceeding it answers 504
    /// (nginx `proxy_read_timeout`).
    pub read_timeout: Duration,
    /// Longest wait to write to an upstream (nginx `proxy_send_timeout`).
    pub write_timeout: Duration,
    /// How long an idle upstream connection is kept in the pool for reuse.
    pub idle_timeout: Duration,
    /// Take `X-Forwarded-*` and `X-Real-IP` from clients (ferry sits behind a trusted load
    /// balancer) instead of overwriting them with what ferry sees.
    pub trust_forwarded_headers: bool,
    /// Port of the HTTPS listener, for redirects from plain HTTP (omitted from the `Location`
    /// when 443).
    pub https_port: u16,
    /// What a client may ask of the proxy.
    pub limits: Limits,
}

/// Bounds on what clients may send, so a hostile or broken client costs a bounded amount.
/// Each refusal is counted in `ferry_http_limit_rejections_total{limit}`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Client connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// HTTP/1: a complete request head must arrive within this time of the connection opening
    /// or of the previous response ending, else the connection is closed. Bounds slowloris
    /// clients and idle keep-alive connections alike.
    pub client_header_timeout: Duration,
    /// Header fields in a request (431 beyond).
    pub max_request_headers: usize,
    /// Bytes of the request line and headers (431 beyond).
    pub max_request_header_bytes: usize,
    /// Bytes of a request body (413 beyond); `None` for no limit.
    pub max_body_bytes: Option<u64>,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            client_header_timeout: Duration::from_secs(60),
            max_request_headers: 100,
            max_request_header_bytes: 32 * 1024,
            max_body_bytes: Some(100 * 1024 * 1024),
            h2_max_concurrent_streams: 128,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            trust_forwarded_headers: false,
            https_port: 443,
            limits: Limits::default(),
        }
    }
}
