//! The command line: `ferry run` and `ferry demo`. Every `run` flag can also come from the
//! environment (`FERRY_*`), which is how the Helm chart and the DaemonSet pass them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_controller::ControllerConfig;
use ferry_dataplane::ProxyConfig;
use ferry_model::{LoadBalance, ObjectRef};

pub(crate) const ENV_MANIFESTS: &str = "FERRY_MANIFESTS";
pub(crate) const ENV_HTTP_ADDR: &str = "FERRY_HTTP_ADDR";
pub(crate) const ENV_HTTPS_ADDR: &str = "FERRY_HTTPS_ADDR";
pub(crate) const ENV_DEFAULT_SSL_CERTIFICATE: &str = "FERRY_DEFAULT_SSL_CERTIFICATE";
pub(crate) const ENV_ADMIN_ADDR: &str = "FERRY_ADMIN_ADDR";
pub(crate) const ENV_INGRESS_CLASS: &str = "FERRY_INGRESS_CLASS";
pub(crate) const ENV_WATCH_INGRESS_WITHOUT_CLASS: &str = "FERRY_WATCH_INGRESS_WITHOUT_CLASS";
pub(crate) const ENV_LOAD_BALANCE: &str = "FERRY_LOAD_BALANCE";
pub(crate) const ENV_UPSTREAM_CONNECT_TIMEOUT: &str = "FERRY_UPSTREAM_CONNECT_TIMEOUT";
pub(crate) const ENV_UPSTREAM_READ_TIMEOUT: &str = "FERRY_UPSTREAM_READ_TIMEOUT";
pub(crate) const ENV_UPSTREAM_WRITE_TIMEOUT: &str = "FERRY_UPSTREAM_WRITE_TIMEOUT";
pub(crate) const ENV_UPSTREAM_IDLE_TIMEOUT: &str = "FERRY_UPSTREAM_IDLE_TIMEOUT";
pub(crate) const ENV_TRUST_FORWARDED_HEADERS: &str = "FERRY_TRUST_FORWARDED_HEADERS";
pub(crate) const ENV_WORKERS: &str = "FERRY_WORKERS";
pub(crate) const ENV_RELOAD_DEBOUNCE: &str = "FERRY_RELOAD_DEBOUNCE";
pub(crate) const ENV_LOG_FORMAT: &str = "FERRY_LOG_FORMAT";
/// Log filter in `tracing` syntax, e.g. `info,ferry::access=off`.
pub(crate) const ENV_LOG: &str = "FERRY_LOG";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Kubernetes ingress controller and Service load balancer",
    long_about = "Kubernetes ingress controller and Service load balancer.\n\n\
                  `ferry demo` starts a working example on 127.0.0.1:8080 with nothing to install.\n\
                  `ferry run --manifests DIR` serves the Ingresses, Services and EndpointSlices \
                  found in a folder of Kubernetes YAML, and follows its changes.\n\n\
                  Logs go to stderr; set FERRY_LOG (e.g. `debug`, or `info,ferry::access=off`)."
)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, global = true, env = ENV_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve Ingresses: from a folder of manifests (--manifests DIR).
    Run(RunArgs),
    /// Serve the quickstart example with demo backends ferry starts itself, and print curl
    /// commands to try. Run it from the repository root.
    Demo(DemoArgs),
    /// Run an echo backend: answers every request with JSON saying who answered and what it
    /// received (HTTP/1.1, h2c, WebSocket echo). For trying ferry out and for benchmarks.
    Backend(BackendArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub(crate) listen: SocketAddr,
    /// Name the backend answers with (default: its address).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Delay before each answer, to play a slow endpoint.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) delay: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Folder of Kubernetes YAML/JSON (Ingress, IngressClass, Service, EndpointSlice,
    /// Endpoints; other kinds are skipped) to serve instead of a cluster. It is watched: a
    /// change is served at once, a broken file is reported and the last good state keeps
    /// serving.
    #[arg(long, env = ENV_MANIFESTS, value_name = "DIR")]
    pub(crate) manifests: Option<PathBuf>,
    /// Address of the plain-HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, env = ENV_HTTP_ADDR, default_value = "0.0.0.0:80")]
    pub(crate) http_addr: SocketAddr,
    /// Address of the HTTPS listener (TLS 1.2 and 1.3; HTTP/2 and HTTP/1.1 by ALPN).
    #[arg(long, env = ENV_HTTPS_ADDR, default_value = "0.0.0.0:443")]
    pub(crate) https_addr: SocketAddr,
    /// Address of the admin server: /healthz, /readyz and /metrics.
    #[arg(long, env = ENV_ADMIN_ADDR, default_value = "0.0.0.0:10254")]
    pub(crate) admin_addr: SocketAddr,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Folder of the example manifests.
    #[arg(long, default_value = "examples/quickstart", value_name = "DIR")]
    pub(crate) manifests: PathBuf,
    /// Address of the demo's HTTP listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) http_addr: SocketAddr,
    /// Address of the demo's HTTPS listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub(crate) https_addr: SocketAddr,
    /// Address of the demo's admin server.
    #[arg(long, default_value = "127.0.0.1:10254")]
    pub(crate) admin_addr: SocketAddr,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// IngressClass name to serve (Ingresses name it in spec.ingressClassName or the legacy
    /// kubernetes.io/ingress.class annotation). Its IngressClass object, if any, must have
    /// controller ferry.dev/ingress-controller.
    #[arg(long, env = ENV_INGRESS_CLASS, default_value = "ferry")]
    pub(crate) ingress_class: String,
    /// The kubernetes.io/tls Secret (NAMESPACE/NAME) whose certificate answers TLS handshakes
    /// for hosts without one of their own, and those without SNI. Without it ferry generates a
    /// self-signed certificate at start.
    #[arg(long, env = ENV_DEFAULT_SSL_CERTIFICATE, value_name = "NAMESPACE/NAME", value_parser = parse_object_ref)]
    pub(crate) default_ssl_certificate: Option<ObjectRef>,
    /// Also serve Ingresses that name no class, even if our class is not the default one.
    #[arg(long, env = ENV_WATCH_INGRESS_WITHOUT_CLASS)]
    pub(crate) watch_ingress_without_class: bool,
    /// Balancing policy when an Ingress does not set ferry.dev/load-balance: round-robin, or
    /// ewma (power of two choices over latency and load).
    #[arg(long, env = ENV_LOAD_BALANCE, default_value = "round-robin", value_parser = parse_load_balance)]
    pub(crate) load_balance: LoadBalance,
    /// Time allowed to connect to an endpoint before trying another one (then 502/504).
    #[arg(long, env = ENV_UPSTREAM_CONNECT_TIMEOUT, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) upstream_connect_timeout: Duration,
    /// Longest wait for the next bytes of a response from an endpoint (then 504).
    #[arg(long, env = ENV_UPSTREAM_READ_TIMEOUT, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) upstream_read_timeout: Duration,
    /// Longest wait to send request bytes to an endpoint.
    #[arg(long, env = ENV_UPSTREAM_WRITE_TIMEOUT, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) upstream_write_timeout: Duration,
    /// How long an idle connection to an endpoint is kept for reuse.
    #[arg(long, env = ENV_UPSTREAM_IDLE_TIMEOUT, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) upstream_idle_timeout: Duration,
    /// Keep X-Forwarded-For/-Proto/-Host/-Port and X-Real-IP sent by clients (only behind a
    /// load balancer that sets them); by default ferry overwrites them.
    #[arg(long, env = ENV_TRUST_FORWARDED_HEADERS)]
    pub(crate) trust_forwarded_headers: bool,
    /// Worker threads of the proxy (default: one per CPU).
    #[arg(long, env = ENV_WORKERS)]
    pub(crate) workers: Option<usize>,
    /// Quiet time after a change before the configuration is rebuilt; a burst of changes is
    /// one rebuild.
    #[arg(long, env = ENV_RELOAD_DEBOUNCE, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub(crate) reload_debounce: Duration,
}

fn parse_object_ref(value: &str) -> Result<ObjectRef, String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectRef::new(ns, name))
        }
        _ => Err("expected NAMESPACE/NAME".to_owned()),
    }
}

fn parse_load_balance(name: &str) -> Result<LoadBalance, String> {
    LoadBalance::from_name(name)
        .ok_or_else(|| format!("expected one of: {}", LoadBalance::NAMES.join(", ")))
}

/// Everything `ferry` runs with, from either subcommand.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) manifests: Option<PathBuf>,
    pub(crate) http_addr: SocketAddr,
    pub(crate) https_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) controller: ControllerConfig,
    pub(crate) proxy: ProxyConfig,
    pub(crate) workers: usize,
}

impl CommonArgs {
    fn settings(&self, manifests: Option<PathBuf>, addrs: [SocketAddr; 3]) -> Settings {
        let [http_addr, https_addr, admin_addr] = addrs;
        Settings {
            manifests,
            http_addr,
            https_addr,
            admin_addr,
            controller: ControllerConfig {
                ingress_class: self.ingress_class.clone(),
                watch_ingress_without_class: self.watch_ingress_without_class,
                default_load_balance: self.load_balance,
                debounce: self.reload_debounce,
                default_certificate: self.default_ssl_certificate.clone(),
            },
            proxy: ProxyConfig {
                connect_timeout: self.upstream_connect_timeout,
                read_timeout: self.upstream_read_timeout,
                write_timeout: self.upstream_write_timeout,
                idle_timeout: self.upstream_idle_timeout,
                trust_forwarded_headers: self.trust_forwarded_headers,
                https_port: https_addr.port(),
            },
            workers: self
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
        }
    }
}

impl RunArgs {
    pub(crate) fn settings(&self) -> Settings {
        let addrs = [self.http_addr, self.https_addr, self.admin_addr];
        self.common.settings(self.manifests.clone(), addrs)
    }
}

impl DemoArgs {
    pub(crate) fn settings(&self) -> Settings {
        let addrs = [self.http_addr, self.https_addr, self.admin_addr];
        self.common.settings(Some(self.manifests.clone()), addrs)
    }
}
