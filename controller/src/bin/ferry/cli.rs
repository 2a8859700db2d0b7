//! The command line: `ferry run` and `ferry demo`. Every `run` flag can also come from the
//! environment (`FERRY_*`), which is how the Helm chart and the DaemonSet pass them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_controller::ControllerConfig;
use ferry_controller::cluster::{ClusterConfig, LeaseConfig, StatusConfig};
use ferry_dataplane::ProxyConfig;
use ferry_dataplane::config::Limits;
use ferry_dataplane::l4::{Capacities, L4Config};
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
pub(crate) const ENV_NODE_NAME: &str = "NODE_NAME";
pub(crate) const ENV_L4: &str = "FERRY_L4";
pub(crate) const ENV_CGROUP_PATH: &str = "FERRY_CGROUP_PATH";
pub(crate) const ENV_DEVICES: &str = "FERRY_DEVICES";
pub(crate) const ENV_BPF_PIN_PATH: &str = "FERRY_BPF_PIN_PATH";
pub(crate) const ENV_L4_MAX_SERVICES: &str = "FERRY_L4_MAX_SERVICES";
pub(crate) const ENV_L4_MAX_BACKENDS: &str = "FERRY_L4_MAX_BACKENDS";
pub(crate) const ENV_L4_MAX_CONNECTIONS: &str = "FERRY_L4_MAX_CONNECTIONS";
pub(crate) const ENV_L4_MAX_AFFINITY: &str = "FERRY_L4_MAX_AFFINITY";
pub(crate) const ENV_KUBECONFIG: &str = "KUBECONFIG";
pub(crate) const ENV_WATCH_NAMESPACE: &str = "FERRY_WATCH_NAMESPACE";
pub(crate) const ENV_POD_NAME: &str = "POD_NAME";
pub(crate) const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
pub(crate) const ENV_ELECTION_ID: &str = "FERRY_ELECTION_ID";
pub(crate) const ENV_LEASE_DURATION: &str = "FERRY_LEASE_DURATION";
pub(crate) const ENV_LEASE_RENEW_DEADLINE: &str = "FERRY_LEASE_RENEW_DEADLINE";
pub(crate) const ENV_LEASE_RETRY_PERIOD: &str = "FERRY_LEASE_RETRY_PERIOD";
pub(crate) const ENV_UPDATE_STATUS: &str = "FERRY_UPDATE_STATUS";
pub(crate) const ENV_PUBLISH_STATUS_ADDRESS: &str = "FERRY_PUBLISH_STATUS_ADDRESS";
pub(crate) const ENV_PUBLISH_SERVICE: &str = "FERRY_PUBLISH_SERVICE";
pub(crate) const ENV_WATCH_BACKOFF_MAX: &str = "FERRY_WATCH_BACKOFF_MAX";
pub(crate) const ENV_MAX_CONNECTIONS: &str = "FERRY_MAX_CONNECTIONS";
pub(crate) const ENV_CLIENT_HEADER_TIMEOUT: &str = "FERRY_CLIENT_HEADER_TIMEOUT";
pub(crate) const ENV_MAX_REQUEST_HEADERS: &str = "FERRY_MAX_REQUEST_HEADERS";
pub(crate) const ENV_MAX_REQUEST_HEADER_BYTES: &str = "FERRY_MAX_REQUEST_HEADER_BYTES";
pub(crate) const ENV_MAX_BODY_SIZE: &str = "FERRY_MAX_BODY_SIZE";
pub(crate) const ENV_H2_MAX_CONCURRENT_STREAMS: &str = "FERRY_H2_MAX_CONCURRENT_STREAMS";
pub(crate) const ENV_UPGRADE_SOCKET: &str = "FERRY_UPGRADE_SOCKET";
const DEFAULT_UPGRADE_SOCKET: &str = "/tmp/ferry-upgrade.sock";
pub(crate) const ENV_SHUTDOWN_DELAY: &str = "FERRY_SHUTDOWN_DELAY";
pub(crate) const ENV_DRAIN_TIMEOUT: &str = "FERRY_DRAIN_TIMEOUT";
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
    /// Serve Ingresses: from the cluster's API server, or from a folder of manifests
    /// (--manifests DIR).
    Run(Box<RunArgs>),
    /// Serve the quickstart example with demo backends ferry starts itself, and print curl
    /// commands to try. Run it from the repository root.
    Demo(Box<DemoArgs>),
    /// Run an echo backend: answers every request with JSON saying who answered and what it
    /// received (HTTP/1.1, h2c, WebSocket echo). For trying ferry out and for benchmarks.
    Backend(BackendArgs),
    /// Print the RBAC ClusterRole and Role that cluster mode needs: exactly the API calls
    /// ferry makes.
    Rbac(RbacArgs),
    /// Inspect or clean up the L4 path on this node.
    L4 {
        #[command(subcommand)]
        command: L4Command,
    },
    /// Connect (or send datagrams) to an address, and print, per attempt, who answered, which
    /// client address it saw, and the peer the socket reports: a way to see Services work.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub(crate) listen: SocketAddr,
    /// Name the backend answers with (default: its address).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Answer UDP datagrams (with the name and the client address) instead of HTTP.
    #[arg(long)]
    pub(crate) udp: bool,
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
    /// Check the flags, print the settings ferry would run with, and exit without binding or
    /// connecting to anything (as `nginx -t` does for a configuration).
    #[arg(long)]
    pub(crate) check: bool,
    /// Take the listening sockets over from a running ferry (started with the same
    /// listener addresses and --upgrade-socket), for a binary upgrade without a refused
    /// connection: start the new one with --upgrade, then send the old one SIGQUIT within
    /// 5 s. The old one hands its sockets over, stops accepting 5 s later, drains and exits.
    #[arg(long)]
    pub(crate) upgrade: bool,
    /// Unix socket the listening sockets are handed over on, in --upgrade.
    #[arg(long, env = ENV_UPGRADE_SOCKET, default_value = DEFAULT_UPGRADE_SOCKET)]
    pub(crate) upgrade_socket: PathBuf,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) l4: L4Args,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

/// The L4 path: Services in the kernel.
#[derive(Debug, Args)]
pub(crate) struct L4Args {
    /// Implement Services in the kernel with eBPF (socket LB for ClusterIPs, TC for NodePorts and
    /// external IPs), replacing kube-proxy. Default: on in cluster mode, off with --manifests.
    /// `--l4=false` for clusters that keep kube-proxy.
    #[arg(long, env = ENV_L4, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub(crate) l4: Option<bool>,
    /// cgroup v2 directory the socket-LB programs attach to (every process below it is served);
    /// default: the root of the mounted cgroup v2 hierarchy, else one mounted at
    /// /run/ferry/cgroup2.
    #[arg(long, env = ENV_CGROUP_PATH, value_name = "DIR")]
    pub(crate) cgroup_path: Option<PathBuf>,
    /// Interfaces for NodePort and external IPs (comma-separated); NodePorts answer on their
    /// IPv4 addresses. Default: the interfaces carrying a default route.
    #[arg(long, env = ENV_DEVICES, value_delimiter = ',')]
    pub(crate) devices: Vec<String>,
    /// Directory on a BPF filesystem where the maps are pinned (kept across restarts).
    #[arg(long, env = ENV_BPF_PIN_PATH, default_value = "/sys/fs/bpf/ferry")]
    pub(crate) bpf_pin_path: PathBuf,
    /// Capacity of the services map: frontends plus their backend slots.
    #[arg(long, env = ENV_L4_MAX_SERVICES, default_value_t = 65_536, value_parser = parse_count)]
    pub(crate) l4_max_services: u32,
    /// Capacity of the backends map.
    #[arg(long, env = ENV_L4_MAX_BACKENDS, default_value_t = 65_536, value_parser = parse_count)]
    pub(crate) l4_max_backends: u32,
    /// Connections tracked for NodePorts (and sockets for UDP replies).
    #[arg(long, env = ENV_L4_MAX_CONNECTIONS, default_value_t = 262_144, value_parser = parse_count)]
    pub(crate) l4_max_connections: u32,
    /// Clients remembered for sessionAffinity: ClientIP.
    #[arg(long, env = ENV_L4_MAX_AFFINITY, default_value_t = 65_536, value_parser = parse_count)]
    pub(crate) l4_max_affinity: u32,
}

impl L4Args {
    fn config(&self, default_on: bool) -> Option<L4Config> {
        self.l4.unwrap_or(default_on).then(|| L4Config {
            pin_path: self.bpf_pin_path.clone(),
            cgroup_path: self.cgroup_path.clone(),
            devices: self.devices.clone(),
            capacities: Capacities {
                services: self.l4_max_services,
                backends: self.l4_max_backends,
                connections: self.l4_max_connections,
                affinity: self.l4_max_affinity,
            },
            ..L4Config::default()
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum L4Command {
    /// Print the Services programmed in the kernel on this node, and the programs' counters.
    Dump {
        #[arg(long, env = ENV_BPF_PIN_PATH, default_value = "/sys/fs/bpf/ferry")]
        bpf_pin_path: PathBuf,
    },
    /// Remove the maps ferry pinned (after stopping it for good).
    Cleanup {
        #[arg(long, env = ENV_BPF_PIN_PATH, default_value = "/sys/fs/bpf/ferry")]
        bpf_pin_path: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ProbeProtocol {
    Tcp,
    Udp,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// tcp: an HTTP request per new connection (to `ferry backend`); udp: one datagram each.
    #[arg(value_enum)]
    pub(crate) protocol: ProbeProtocol,
    pub(crate) addr: SocketAddr,
    /// Connections (or datagrams) to make.
    #[arg(long, default_value_t = 1)]
    pub(crate) count: usize,
    /// UDP: use a connected socket (else sendto/recvfrom).
    #[arg(long)]
    pub(crate) connect: bool,
    /// Local address to send from (default: chosen by the kernel).
    #[arg(long)]
    pub(crate) source: Option<std::net::IpAddr>,
}

/// Cluster mode: used when `--manifests` is not given.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Kubeconfig to reach the API server with; without it, the in-cluster service account
    /// (or the usual KUBECONFIG / ~/.kube/config inference).
    #[arg(long, env = ENV_KUBECONFIG, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Watch namespaced objects (Ingresses, Services, EndpointSlices, Endpoints, Secrets) in
    /// this namespace only; all namespaces by default.
    #[arg(long, env = ENV_WATCH_NAMESPACE)]
    pub(crate) watch_namespace: Option<String>,
    /// This replica's name in the leader Lease and in Events (the downward API's
    /// metadata.name); the host name by default.
    #[arg(long, env = ENV_POD_NAME)]
    pub(crate) pod_name: Option<String>,
    /// Namespace of the leader-election Lease (the downward API's metadata.namespace).
    #[arg(long, env = ENV_POD_NAMESPACE, default_value = "default")]
    pub(crate) pod_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = ENV_ELECTION_ID, default_value = "ferry-leader")]
    pub(crate) election_id: String,
    /// How long a Lease not renewed stays with its holder.
    #[arg(long, env = ENV_LEASE_DURATION, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(crate) lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    #[arg(long, env = ENV_LEASE_RENEW_DEADLINE, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) lease_renew_deadline: Duration,
    /// How often replicas try to acquire or renew the Lease.
    #[arg(long, env = ENV_LEASE_RETRY_PERIOD, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) lease_retry_period: Duration,
    /// Write status.loadBalancer of our Ingresses (by the elected leader) and Events.
    #[arg(long, env = ENV_UPDATE_STATUS, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) update_status: bool,
    /// Addresses (IPs or host names, comma-separated) to publish in Ingress status, instead
    /// of the nodes' addresses.
    #[arg(long, env = ENV_PUBLISH_STATUS_ADDRESS, value_delimiter = ',')]
    pub(crate) publish_status_address: Vec<String>,
    /// Publish the load-balancer addresses of this Service (NAMESPACE/NAME) in Ingress status.
    #[arg(long, env = ENV_PUBLISH_SERVICE, value_name = "NAMESPACE/NAME", value_parser = parse_object_ref)]
    pub(crate) publish_service: Option<ObjectRef>,
    /// Longest wait between attempts of a failing watch.
    #[arg(long, env = ENV_WATCH_BACKOFF_MAX, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) watch_backoff_max: Duration,
}

impl ClusterArgs {
    pub(crate) fn config(&self) -> ClusterConfig {
        let identity = self.pod_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "ferry".to_owned())
        });
        ClusterConfig {
            namespace: self.watch_namespace.clone(),
            lease: LeaseConfig {
                name: self.election_id.clone(),
                duration: self.lease_duration,
                renew_deadline: self.lease_renew_deadline,
                retry_period: self.lease_retry_period,
                ..LeaseConfig::new(&self.pod_namespace, &identity)
            },
            status: StatusConfig {
                enabled: self.update_status,
                addresses: self.publish_status_address.clone(),
                publish_service: self.publish_service.clone(),
            },
            backoff_max: self.watch_backoff_max,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct RbacArgs {
    /// Name of the ClusterRole (and prefix of the Role).
    #[arg(long, default_value = "ferry")]
    pub(crate) name: String,
    /// Namespace of the leader-election Role (where ferry runs).
    #[arg(long, default_value = "ferry-system")]
    pub(crate) namespace: String,
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
    /// The node this replica runs on (set from the downward API's spec.nodeName), recorded for
    /// node-local endpoint choices.
    #[arg(long, env = ENV_NODE_NAME)]
    pub(crate) node_name: Option<String>,
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
    #[arg(long, env = ENV_WORKERS, value_parser = parse_count)]
    pub(crate) workers: Option<u32>,
    /// Quiet time after a change before the configuration is rebuilt; a burst of changes is
    /// one rebuild.
    #[arg(long, env = ENV_RELOAD_DEBOUNCE, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub(crate) reload_debounce: Duration,
    /// Client connections open at once; more are closed as they arrive.
    #[arg(long, env = ENV_MAX_CONNECTIONS, default_value_t = 16_384, value_parser = parse_count)]
    pub(crate) max_connections: u32,
    /// HTTP/1: a complete request head must arrive within this time of the connection
    /// opening or the previous response (slowloris, idle keep-alive); HTTP/2: idle timeout.
    #[arg(long, env = ENV_CLIENT_HEADER_TIMEOUT, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) client_header_timeout: Duration,
    /// Header fields in a request; more get 431.
    #[arg(long, env = ENV_MAX_REQUEST_HEADERS, default_value_t = 100, value_parser = parse_count)]
    pub(crate) max_request_headers: u32,
    /// Bytes of a request's target and headers; more get 431.
    #[arg(long, env = ENV_MAX_REQUEST_HEADER_BYTES, default_value = "32k", value_parser = parse_size)]
    pub(crate) max_request_header_bytes: u64,
    /// Bytes of a request body (k, m, g suffixes, powers of 1024; 0 for no limit); more get
    /// 413 (ingress-nginx's proxy-body-size).
    #[arg(long, env = ENV_MAX_BODY_SIZE, default_value = "100m", value_parser = parse_size)]
    pub(crate) max_body_size: u64,
    /// HTTP/2 streams a client may have open at once on one connection.
    #[arg(long, env = ENV_H2_MAX_CONCURRENT_STREAMS, default_value_t = 128, value_parser = parse_count)]
    pub(crate) h2_max_concurrent_streams: u32,
    /// On SIGTERM, how long ferry keeps accepting connections while /readyz already answers
    /// 503, so load balancers stop sending before the listeners close.
    #[arg(long, env = ENV_SHUTDOWN_DELAY, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_delay: Duration,
    /// After the listeners close, how long requests in flight (and WebSockets) may take to
    /// finish; ferry exits as soon as none is left. SIGINT skips both waits.
    #[arg(long, env = ENV_DRAIN_TIMEOUT, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) drain_timeout: Duration,
}

fn parse_object_ref(value: &str) -> Result<ObjectRef, String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectRef::new(ns, name))
        }
        _ => Err("expected NAMESPACE/NAME".to_owned()),
    }
}

/// A count: a whole number, also in the exponent form Helm prints values of a million and more
/// in (`1e+06`), so a chart value reaches ferry intact.
fn parse_count(value: &str) -> Result<u32, String> {
    if let Ok(n) = value.parse::<u32>() {
        return Ok(n);
    }
    match value.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(f as u32),
        _ => Err(format!("expected a whole number up to {}", u32::MAX)),
    }
}

/// A size in bytes: a number with an optional k, m or g suffix (powers of 1024), as nginx
/// writes them.
fn parse_size(value: &str) -> Result<u64, String> {
    let lower = value.trim().to_ascii_lowercase();
    let (number, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let unit: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err("expected a size such as 512, 32k, 100m or 1g".to_owned()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| "expected a size such as 512, 32k, 100m or 1g".to_owned())
}

fn parse_load_balance(name: &str) -> Result<LoadBalance, String> {
    LoadBalance::from_name(name)
        .ok_or_else(|| format!("expected one of: {}", LoadBalance::NAMES.join(", ")))
}

/// Where Kubernetes objects come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Manifests(PathBuf),
    Cluster {
        kubeconfig: Option<PathBuf>,
        config: Box<ClusterConfig>,
    },
}

/// Everything `ferry` runs with, from either subcommand.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) source: Source,
    /// The L4 path, when enabled.
    pub(crate) l4: Option<L4Config>,
    pub(crate) http_addr: SocketAddr,
    pub(crate) https_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) controller: ControllerConfig,
    pub(crate) proxy: ProxyConfig,
    pub(crate) workers: usize,
    pub(crate) shutdown: crate::shutdown::ShutdownConfig,
    /// Take the listeners over from a running ferry.
    pub(crate) upgrade: bool,
    /// Where listeners are handed over (to a new ferry, or from an old one).
    pub(crate) upgrade_socket: PathBuf,
}

impl CommonArgs {
    fn settings(&self, source: Source, addrs: [SocketAddr; 3]) -> Settings {
        let [http_addr, https_addr, admin_addr] = addrs;
        Settings {
            source,
            l4: None,
            http_addr,
            https_addr,
            admin_addr,
            controller: ControllerConfig {
                ingress_class: self.ingress_class.clone(),
                watch_ingress_without_class: self.watch_ingress_without_class,
                default_load_balance: self.load_balance,
                debounce: self.reload_debounce,
                default_certificate: self.default_ssl_certificate.clone(),
                node_name: self.node_name.clone(),
            },
            proxy: ProxyConfig {
                connect_timeout: self.upstream_connect_timeout,
                read_timeout: self.upstream_read_timeout,
                write_timeout: self.upstream_write_timeout,
                idle_timeout: self.upstream_idle_timeout,
                trust_forwarded_headers: self.trust_forwarded_headers,
                https_port: https_addr.port(),
                limits: Limits {
                    max_connections: self.max_connections as usize,
                    client_header_timeout: self.client_header_timeout,
                    max_request_headers: self.max_request_headers as usize,
                    max_request_header_bytes: self.max_request_header_bytes as usize,
                    max_body_bytes: (self.max_body_size > 0).then_some(self.max_body_size),
                    h2_max_concurrent_streams: self.h2_max_concurrent_streams,
                },
            },
            workers: self
                .workers
                .map(|n| n as usize)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            shutdown: crate::shutdown::ShutdownConfig {
                delay: self.shutdown_delay,
                drain: self.drain_timeout,
            },
            upgrade: false,
            upgrade_socket: PathBuf::from(DEFAULT_UPGRADE_SOCKET),
        }
    }
}

impl RunArgs {
    pub(crate) fn settings(&self) -> Settings {
        let addrs = [self.http_addr, self.https_addr, self.admin_addr];
        let source = match &self.manifests {
            Some(dir) => Source::Manifests(dir.clone()),
            None => Source::Cluster {
                kubeconfig: self.cluster.kubeconfig.clone(),
                config: Box::new(self.cluster.config()),
            },
        };
        let cluster_mode = matches!(source, Source::Cluster { .. });
        Settings {
            l4: self.l4.config(cluster_mode),
            upgrade: self.upgrade,
            upgrade_socket: self.upgrade_socket.clone(),
            ..self.common.settings(source, addrs)
        }
    }
}

impl DemoArgs {
    pub(crate) fn settings(&self) -> Settings {
        let addrs = [self.http_addr, self.https_addr, self.admin_addr];
        self.common
            .settings(Source::Manifests(self.manifests.clone()), addrs)
    }
}
