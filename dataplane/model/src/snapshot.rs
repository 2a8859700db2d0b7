//! The immutable world the data plane serves from, and how it is handed over.

use std::sync::Arc;

use crate::route::RouteTable;
use crate::service::ServiceTable;
use crate::tls::CertStore;
use crate::upstream::Upstream;

/// Everything the data plane needs to serve, built by the controller in one piece and never
/// changed afterwards: a request that loaded a snapshot sees one consistent world.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every snapshot a controller publishes.
    pub generation: u64,
    pub routes: RouteTable,
    /// Every upstream a route points at, each once; `upstreams[i].index == i`.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Certificates for the HTTPS listener.
    pub certs: CertStore,
    /// The node this replica runs on, for choosing node-local endpoints.
    pub node_name: Option<Arc<str>>,
    /// Services for the L4 path.
    pub services: Arc<ServiceTable>,
}

/// Where the controller publishes snapshots: the data plane implements it.
pub trait SnapshotSink: Send + Sync + 'static {
    /// Replaces what is served. Must not block on requests in flight.
    fn publish(&self, snapshot: Snapshot);
}
