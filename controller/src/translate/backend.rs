//! Backends to upstreams: a Service and port, resolved through `Service.spec.ports` to the
//! endpoints kube-proxy would use. Upstreams are shared: every route to the same Service port
//! (with the same balancing policy) points at one [`Upstream`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_model::{Endpoint, LoadBalance, ObjectRef, Upstream, UpstreamTarget};

use super::Diagnostic;
use crate::index::{
    BackendRef, BackendTarget, EndpointGroup, Index, IngressEntry, PortRef, ServicePortEntry,
};

/// Why an upstream has no endpoints to offer, before it is tied to the Ingress field that
/// referenced it.
#[derive(Debug, Clone)]
enum Problem {
    UnknownService,
    UnknownServicePort,
    NoEndpointPort(String),
}

type Key = (Arc<str>, String, PortRef, LoadBalance);

/// The upstreams of one translation.
#[derive(Debug)]
pub(super) struct Upstreams<'a> {
    index: &'a Index,
    resolved: HashMap<Key, (Arc<Upstream>, Option<Problem>)>,
    list: Vec<Arc<Upstream>>,
}

impl<'a> Upstreams<'a> {
    pub(super) fn new(index: &'a Index) -> Self {
        Upstreams {
            index,
            resolved: HashMap::new(),
            list: Vec::new(),
        }
    }

    /// The upstream of a backend of `ingress`, or `None` (reported) for backends ferry does not
    /// serve.
    pub(super) fn resolve(
        &mut self,
        ingress: &IngressEntry,
        backend: &BackendRef,
        load_balance: LoadBalance,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Arc<Upstream>> {
        let (service, port) = match &backend.target {
            BackendTarget::Service { name, port } => (name, port),
            BackendTarget::Resource { kind, name } => {
                diagnostics.push(Diagnostic::UnsupportedResourceBackend {
                    ingress: ingress.key.clone(),
                    field: format!("{}.resource", backend.field),
                    kind: kind.clone(),
                    name: name.clone(),
                });
                return None;
            }
        };
        let key = (
            ingress.key.namespace.clone(),
            service.clone(),
            port.clone(),
            load_balance,
        );
        let (upstream, problem) = match self.resolved.get(&key) {
            Some(found) => found.clone(),
            None => {
                let (label, target, problem) = self.target(&ingress.key.namespace, service, port);
                let upstream = Arc::new(Upstream {
                    index: self.list.len(),
                    name: format!("{}/{service}:{label}", ingress.key.namespace).into(),
                    service: ObjectRef::new(ingress.key.namespace.clone(), service.as_str()),
                    load_balance,
                    target,
                });
                self.list.push(upstream.clone());
                self.resolved
                    .insert(key, (upstream.clone(), problem.clone()));
                (upstream, problem)
            }
        };
        let field = format!("{}.service", backend.field);
        let service = service.clone();
        let ingress = ingress.key.clone();
        diagnostics.extend(problem.map(|p| match p {
            Problem::UnknownService => Diagnostic::UnknownService {
                ingress,
                field,
                service,
            },
            Problem::UnknownServicePort => Diagnostic::UnknownServicePort {
                ingress,
                field: format!("{field}.port"),
                service,
                port: port.clone(),
            },
            Problem::NoEndpointPort(port_name) => Diagnostic::NoEndpointPort {
                ingress,
                field: format!("{field}.port"),
                service,
                port_name,
            },
        }));
        Some(upstream)
    }

    /// Where requests for `service` `port` go, and the label naming the port.
    fn target(
        &self,
        namespace: &str,
        service: &str,
        port: &PortRef,
    ) -> (String, UpstreamTarget, Option<Problem>) {
        let nothing = || UpstreamTarget::Endpoints(Arc::new([]));
        let as_given = match port {
            PortRef::Number(n) => n.to_string(),
            PortRef::Name(n) => n.clone(),
        };
        let Some(svc) = self.index.service(namespace, service) else {
            return (as_given, nothing(), Some(Problem::UnknownService));
        };
        let service_port = svc.ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == *n,
            PortRef::Name(n) => p.name == *n,
        });
        if let Some(host) = &svc.external_name {
            // DNS stands in for endpoints: connect to the Service port on what the name resolves to.
            let number = match (port, service_port) {
                (PortRef::Number(n), _) => *n,
                (PortRef::Name(_), Some(p)) => p.port,
                (PortRef::Name(_), None) => {
                    return (as_given, nothing(), Some(Problem::UnknownServicePort));
                }
            };
            let target = UpstreamTarget::ExternalName {
                host: host.as_str().into(),
                port: number,
            };
            return (number.to_string(), target, None);
        }
        let Some(service_port) = service_port else {
            return (as_given, nothing(), Some(Problem::UnknownServicePort));
        };
        let groups = self.index.endpoint_groups(namespace, service);
        let label = service_port.port.to_string();
        match select_endpoints(&groups, service_port, None) {
            Some(endpoints) => (label, UpstreamTarget::Endpoints(endpoints.into()), None),
            None => (
                label,
                nothing(),
                Some(Problem::NoEndpointPort(service_port.name.clone())),
            ),
        }
    }

    pub(super) fn into_vec(self) -> Vec<Arc<Upstream>> {
        self.list
    }
}

/// The endpoints of a Service port that may take traffic, as kube-proxy selects them
/// (KEP-1669): the ready ones; when none is ready, the ones serving while terminating; never
/// the others. Sorted by address and without duplicates (an address may briefly appear in two
/// slices). `None` when endpoints exist but none carries the port's name.
///
/// With `on_node`, only that node's endpoints count, and the selection is made among them
/// (kube-proxy's rule for the `Local` traffic policies).
pub(crate) fn select_endpoints(
    groups: &[&EndpointGroup],
    port: &ServicePortEntry,
    on_node: Option<&str>,
) -> Option<Vec<Endpoint>> {
    #[derive(Default)]
    struct Seen {
        ready: bool,
        serving_terminating: bool,
        node_name: Option<Arc<str>>,
    }
    let mut seen = BTreeMap::<SocketAddr, Seen>::new();
    // Slices without endpoints (a selector matching no pod yet) carry no ports: only groups
    // with endpoints can show that the port name is wrong.
    let mut port_found = groups.iter().all(|g| g.endpoints.is_empty());
    for group in groups {
        let Some(p) = group
            .ports
            .iter()
            .find(|p| p.name == port.name && p.protocol == port.protocol)
        else {
            continue;
        };
        port_found = true;
        for e in &group.endpoints {
            if on_node.is_some_and(|node| e.node_name.as_deref() != Some(node)) {
                continue;
            }
            for ip in &e.addresses {
                let s = seen.entry(SocketAddr::new(*ip, p.port)).or_default();
                s.ready |= e.ready;
                s.serving_terminating |= e.serving && e.terminating;
                if s.node_name.is_none() {
                    s.node_name = e.node_name.clone();
                }
            }
        }
    }
    if !port_found {
        return None;
    }
    let any_ready = seen.values().any(|s| s.ready);
    Some(
        seen.into_iter()
            .filter(|(_, s)| {
                if any_ready {
                    s.ready
                } else {
                    s.serving_terminating
                }
            })
            .map(|(addr, s)| Endpoint {
                addr,
                node_name: s.node_name,
            })
            .collect(),
    )
}
