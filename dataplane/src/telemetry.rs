//! The data plane's Prometheus metrics, in the process-wide default registry (the one the
//! admin server exposes and pingora's own metrics use).

use std::sync::LazyLock;

use ferry_model::{CertStore, HostMatch, Snapshot, UpstreamTarget};
use prometheus::{
    Histogram, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, register_histogram,
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

/// Requests answered, by the Ingress and Service that served them and status class
/// (`2xx` … `5xx`). Requests no route matched have empty `ingress` and `service`.
pub(crate) static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "ferry_http_requests_total",
        "HTTP requests answered, by ingress, service and status class.",
        &["namespace", "ingress", "service", "status"]
    )
    .expect("metric registers once")
});

pub(crate) static REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "ferry_http_request_duration_seconds",
        "Time from the request's arrival to the end of its response.",
        &["namespace", "ingress", "service"]
    )
    .expect("metric registers once")
});

pub(crate) static UPSTREAM_CONNECT_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "ferry_upstream_connect_errors_total",
        "Failed connection attempts to upstream endpoints, by upstream and error.",
        &["upstream", "error"]
    )
    .expect("metric registers once")
});

/// Endpoints ejected by passive health checks, by upstream.
pub(crate) static EJECTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "ferry_upstream_ejections_total",
        "Endpoints taken out of rotation after consecutive failures, by upstream.",
        &["upstream"]
    )
    .expect("metric registers once")
});

pub(crate) static UPSTREAM_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "ferry_upstream_response_header_seconds",
        "Time from choosing an endpoint to receiving its response header."
    )
    .expect("metric registers once")
});

pub(crate) static ACTIVE_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "ferry_http_active_connections",
        "Client connections open on the HTTP listeners."
    )
    .expect("metric registers once")
});

/// Requests and connections refused by a limit (`connections`, `header_timeout`, `headers`,
/// `body`): a fixed set of labels, whatever clients send.
pub(crate) static LIMIT_REJECTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "ferry_http_limit_rejections_total",
        "Client connections and requests refused by a limit, by limit.",
        &["limit"]
    )
    .expect("metric registers once")
});

/// Client connections open on the proxy's listeners right now.
pub fn open_connections() -> i64 {
    ACTIVE_CONNECTIONS.get()
}

static SNAPSHOT_GENERATION: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "ferry_snapshot_generation",
        "Generation of the snapshot being served."
    )
    .expect("metric registers once")
});

static ROUTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("ferry_routes", "Routes in the snapshot being served.")
        .expect("metric registers once")
});

static UPSTREAMS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "ferry_upstreams",
        "Upstreams (Service ports) in the snapshot being served."
    )
    .expect("metric registers once")
});

static ENDPOINTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "ferry_upstream_endpoints",
        "Endpoints selected for traffic over all upstreams of the snapshot being served."
    )
    .expect("metric registers once")
});

static CERTIFICATE_EXPIRY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "ferry_tls_certificate_expiry_seconds",
        "Seconds until the notAfter of each certificate served, by Secret and host (negative: expired). host=\"*\" is the default certificate.",
        &["secret", "host"]
    )
    .expect("metric registers once")
});

/// Sets the certificate expiry gauges from the certificates being served, as of now.
pub fn observe_certificates(certs: &CertStore) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    CERTIFICATE_EXPIRY.reset();
    for (host, cert) in certs.iter() {
        let host = match host {
            HostMatch::Any => "*".to_owned(),
            h => h.to_string(),
        };
        CERTIFICATE_EXPIRY
            .with_label_values(&[cert.secret.to_string(), host])
            .set(cert.not_after - now);
    }
}

/// Records the shape of a snapshot about to be served.
pub(crate) fn snapshot_served(snapshot: &Snapshot) {
    SNAPSHOT_GENERATION.set(snapshot.generation as i64);
    ROUTES.set(snapshot.routes.routes().len() as i64);
    UPSTREAMS.set(snapshot.upstreams.len() as i64);
    let endpoints: usize = snapshot
        .upstreams
        .iter()
        .map(|u| match &u.target {
            UpstreamTarget::Endpoints(e) => e.len(),
            UpstreamTarget::ExternalName { .. } => 0,
        })
        .sum();
    ENDPOINTS.set(endpoints as i64);
}

/// `2xx`, `4xx`, …; `0` (no response was sent) becomes `none`.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}

/// Renders every registered metric in the Prometheus text format.
pub fn render() -> String {
    let families = prometheus::gather();
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
}

/// Registers every data-plane metric, so `/metrics` lists them before the first request.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&REQUEST_DURATION);
    LazyLock::force(&UPSTREAM_CONNECT_ERRORS);
    LazyLock::force(&UPSTREAM_LATENCY);
    LazyLock::force(&EJECTIONS);
    LazyLock::force(&ACTIVE_CONNECTIONS);
    for limit in ["connections", "header_timeout", "headers", "body"] {
        LIMIT_REJECTIONS.with_label_values(&[limit]);
    }
    LazyLock::force(&SNAPSHOT_GENERATION);
    LazyLock::force(&ROUTES);
    LazyLock::force(&UPSTREAMS);
    LazyLock::force(&ENDPOINTS);
    LazyLock::force(&CERTIFICATE_EXPIRY);
}
