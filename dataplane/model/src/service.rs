//! The Services the L4 path implements: per Service port, its frontends (ClusterIPs, NodePort,
//! external and load-balancer IPs) and the backends each kind of frontend may use.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::upstream::ObjectRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct L4Backend {
    pub addr: SocketAddrV4,
    /// Runs on this node.
    pub local: bool,
}

/// One port of one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Service {
    pub service: ObjectRef,
    /// The Service port's name (`""` when unnamed).
    pub port_name: Arc<str>,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ips: Vec<Ipv4Addr>,
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and the load balancer's IPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// Backends for ClusterIP frontends (`internalTrafficPolicy` applied).
    pub internal_backends: Vec<L4Backend>,
    /// Backends for NodePort and external frontends (`externalTrafficPolicy` applied).
    pub external_backends: Vec<L4Backend>,
    /// `externalTrafficPolicy: Local`: keep the client address, local backends only.
    pub external_local: bool,
    /// `sessionAffinity: ClientIP`: seconds a client keeps its backend.
    pub affinity_timeout: Option<u32>,
    /// `healthCheckNodePort` of a `LoadBalancer` Service with the `Local` policy.
    pub health_check_node_port: Option<u16>,
}

impl L4Service {
    /// `namespace/name:port/PROTO`, for logs and listings.
    pub fn label(&self) -> String {
        let port = if self.port_name.is_empty() {
            self.port.to_string()
        } else {
            self.port_name.to_string()
        };
        format!("{}:{port}/{}", self.service, self.protocol)
    }
}

/// Every Service port the L4 path implements, sorted by Service, port and protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub services: Vec<L4Service>,
}
