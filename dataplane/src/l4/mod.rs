//! The L4 path: Kubernetes Services in the kernel, replacing kube-proxy on the node.
//!
//! ```text
//!  Router (snapshots) ──changed──▶ L4::sync ──▶ program::Programmer ──diff──▶ pinned BPF maps
//!                                   │                                         ▲
//!                                   └─▶ health checks (healthCheckNodePort)   │ read by
//!  cgroup v2 (socket LB: connect4, sendmsg4, recvmsg4, getpeername4) ─────────┤
//!  node devices (TC ingress + egress: NodePort, external IPs) ─────────────────┘
//! ```
//!
//! [`L4::start`] loads and attaches (failing with the reason: no BPF, no cgroup v2, …);
//! [`L4::run`] follows the router and programs every snapshot's [`ServiceTable`].

mod health;
mod kernel;
mod program;
pub mod system;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use ferry_model::ServiceTable;
use prometheus::{Histogram, IntCounter, IntGauge};
use tokio::sync::watch;

pub use kernel::{Capacities, cleanup, dump};

use crate::state::Router;

static FRONTENDS: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "ferry_l4_frontends",
        "Service frontends (ClusterIP, NodePort, external IP ports) programmed in the kernel."
    )
    .expect("metric registers once")
});
static BACKENDS: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "ferry_l4_backends",
        "Distinct backends programmed in the kernel."
    )
    .expect("metric registers once")
});
static SYNC_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    prometheus::register_histogram!(
        "ferry_l4_map_update_seconds",
        "Time to bring the kernel maps to a snapshot's Services.",
        vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]
    )
    .expect("metric registers once")
});
static MAP_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "ferry_l4_map_errors_total",
        "Failed updates of the kernel maps (retried with the next snapshot)."
    )
    .expect("metric registers once")
});

#[derive(Debug, thiserror::Error)]
pub enum L4Error {
    #[error(
        "loading the eBPF programs: {0} (the L4 path needs root or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN, and a kernel with BPF)"
    )]
    Load(String),
    #[error("attaching {0}")]
    Attach(String),
    #[error("BPF map {0}")]
    Map(String),
    #[error("{0}")]
    System(String),
}

/// The Linux capabilities the L4 path runs with, and no more (the Helm chart grants exactly
/// these; the L4 tests run ferry with only these):
/// - `BPF`: load programs, create and pin maps (kernel 5.8+ split it from `SYS_ADMIN`);
/// - `NET_ADMIN`: socket-address and TC program types, attaching to cgroups and devices;
/// - `PERFMON`: without it the verifier refuses the TC programs (it treats the loader as
///   untrusted and forbids their pointer arithmetic); checked by running the tests without it.
///
/// `SYS_ADMIN` is not among them: ferry mounts bpffs or cgroup v2 only when none is mounted
/// at the paths it is given, which a Kubernetes node always has (the chart mounts the host's).
pub const CAPABILITIES: &[&str] = &["BPF", "NET_ADMIN", "PERFMON"];

/// Where and how the L4 path runs.
#[derive(Debug, Clone)]
pub struct L4Config {
    /// Directory on a BPF filesystem for the pinned maps.
    pub pin_path: PathBuf,
    /// cgroup v2 directory for socket LB; `None`: the mounted hierarchy's root (or one mounted
    /// at `cgroup_fallback`).
    pub cgroup_path: Option<PathBuf>,
    pub cgroup_fallback: PathBuf,
    /// Devices for the TC programs; empty: those carrying a default route.
    pub devices: Vec<String>,
    pub capacities: Capacities,
}

impl Default for L4Config {
    fn default() -> Self {
        L4Config {
            pin_path: PathBuf::from("/sys/fs/bpf/ferry"),
            cgroup_path: None,
            cgroup_fallback: PathBuf::from("/run/ferry/cgroup2"),
            devices: Vec::new(),
            capacities: Capacities::default(),
        }
    }
}

/// The loaded and attached L4 path. Dropping it detaches the programs.
#[derive(Debug)]
pub struct L4 {
    kernel: kernel::Kernel,
    programmer: program::Programmer,
    node_addresses: Vec<Ipv4Addr>,
    health: health::HealthChecks,
    pub cgroup: PathBuf,
    pub devices: Vec<String>,
}

impl L4 {
    /// Loads the programs (reusing maps pinned by an earlier run) and attaches them.
    pub fn start(config: &L4Config) -> Result<L4, L4Error> {
        system::bpffs(&config.pin_path)?;
        let cgroup = system::cgroup_path(config.cgroup_path.as_deref(), &config.cgroup_fallback)?;
        let devices = if config.devices.is_empty() {
            system::default_devices()?
        } else {
            config.devices.clone()
        };
        let node_addresses = system::ipv4_addresses(&devices)?;
        let mut kernel = kernel::Kernel::load(&config.pin_path, config.capacities)?;
        kernel.attach_cgroup(&cgroup)?;
        for device in &devices {
            kernel.attach_tc(device)?;
        }
        let mirror = kernel.mirror()?;
        tracing::info!(
            cgroup = %cgroup.display(),
            ?devices,
            ?node_addresses,
            pinned_frontends = mirror.frontends.len(),
            "L4 path attached"
        );
        LazyLock::force(&MAP_ERRORS);
        Ok(L4 {
            kernel,
            programmer: program::Programmer::new(mirror),
            node_addresses,
            health: health::HealthChecks::default(),
            cgroup,
            devices,
        })
    }

    /// Where NodePorts answer.
    pub fn node_addresses(&self) -> &[Ipv4Addr] {
        &self.node_addresses
    }

    /// Brings the maps to `table`. Health-check servers need a tokio runtime.
    pub fn sync(&mut self, table: &ServiceTable) -> Result<(), L4Error> {
        let started = Instant::now();
        let wanted = program::wanted(table, &self.node_addresses);
        let result = self.programmer.apply(&wanted, &mut self.kernel);
        SYNC_DURATION.observe(started.elapsed().as_secs_f64());
        FRONTENDS.set(self.programmer.mirror.frontends.len() as i64);
        BACKENDS.set(self.programmer.mirror.backends.len() as i64);
        self.health.update(table);
        match result {
            Ok(changes) => {
                if changes != program::Changes::default() {
                    tracing::info!(?changes, "L4 maps updated");
                }
                Ok(())
            }
            Err(e) => {
                MAP_ERRORS.inc();
                Err(L4Error::Map(e))
            }
        }
    }

    /// Programs every snapshot the router serves until `shutdown`, then detaches.
    pub async fn run(mut self, router: Arc<Router>, mut shutdown: watch::Receiver<bool>) {
        let mut changes = router.subscribe();
        loop {
            if let Some(state) = router.current()
                && let Err(e) = self.sync(&state.snapshot.services)
            {
                // The maps are mirrored as written; the next snapshot retries what failed.
                tracing::error!(error = %e, "L4 maps could not be fully updated");
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
        tracing::info!("L4 path detached; maps stay pinned for the next start");
    }
}
