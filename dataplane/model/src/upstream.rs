//! Where a route sends requests: a Service port resolved to the endpoints that may take traffic.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Namespace and name of a Kubernetes object, as the data plane labels metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectRef {
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ObjectRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How a new request picks one of an upstream's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoadBalance {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// Power of two choices over peak-EWMA latency weighted by requests in flight: two random
    /// endpoints, the one that looks faster wins. Steers away from slow or overloaded endpoints.
    Ewma,
}

impl LoadBalance {
    pub const NAMES: [&str; 2] = ["round-robin", "ewma"];

    pub fn name(self) -> &'static str {
        match self {
            LoadBalance::RoundRobin => Self::NAMES[0],
            LoadBalance::Ewma => Self::NAMES[1],
        }
    }

    /// Parses a policy name; accepts ingress-nginx's spelling `round_robin` too.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "round-robin" | "round_robin" => Some(LoadBalance::RoundRobin),
            "ewma" => Some(LoadBalance::Ewma),
            _ => None,
        }
    }
}

impl fmt::Display for LoadBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One backend address of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The node the endpoint runs on, when the EndpointSlice says.
    pub node_name: Option<Arc<str>>,
}

/// A Service port as a destination for requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Position in [`crate::Snapshot::upstreams`]; lets the data plane keep per-upstream state
    /// in a flat array.
    pub index: usize,
    /// `namespace/service:port`, for logs and metrics.
    pub name: Arc<str>,
    pub service: ObjectRef,
    pub load_balance: LoadBalance,
    pub target: UpstreamTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// The endpoints selected for traffic (ready ones, else serving and terminating ones).
    /// Empty when the Service, its port or its endpoints are missing: requests get 503.
    Endpoints(Arc<[Endpoint]>),
    /// A `type: ExternalName` Service: the name is resolved through DNS when requests come.
    ExternalName { host: Arc<str>, port: u16 },
}
