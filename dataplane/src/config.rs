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
        }
    }
}
