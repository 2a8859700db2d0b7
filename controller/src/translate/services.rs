//! Services for the L4 path: every Service port ferry implements in the kernel (all Services,
//! not only those Ingresses use), with the backends each kind of frontend may use. Skipped:
//! ExternalName and headless Services (no virtual IP), Services claimed by another proxy
//! (`service.kubernetes.io/service-proxy-name`), SCTP ports and IPv6 addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ferry_model::{L4Backend, L4Service, ObjectRef, Protocol, ServiceTable};

use super::backend::select_endpoints;
use crate::index::{EndpointGroup, Index, ServicePortEntry};

fn ipv4s<'a>(addresses: impl IntoIterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    addresses
        .into_iter()
        .filter_map(|a| match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        })
        .collect()
}

/// Backends of `port`: all endpoints chosen as kube-proxy does, or with `local_only` those of
/// `node` only (chosen among themselves; none when the node is not known).
fn backends(
    groups: &[&EndpointGroup],
    port: &ServicePortEntry,
    node: Option<&str>,
    local_only: bool,
) -> Vec<L4Backend> {
    let on_node = local_only.then(|| node.unwrap_or(""));
    select_endpoints(groups, port, on_node)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e.addr {
            SocketAddr::V4(addr) => Some(L4Backend {
                addr,
                local: node.is_some() && e.node_name.as_deref() == node,
            }),
            SocketAddr::V6(_) => None,
        })
        .collect()
}

pub(super) fn service_table(index: &Index, node: Option<&str>) -> ServiceTable {
    let mut services = Vec::new();
    for svc in index.services() {
        if svc.external_name.is_some() || svc.headless || svc.proxy_name.is_some() {
            continue;
        }
        let cluster_ips = ipv4s(&svc.cluster_ips);
        let load_balancer = svc.type_ == "LoadBalancer";
        let node_ports = load_balancer || svc.type_ == "NodePort";
        let mut external_ips = ipv4s(&svc.external_ips);
        if load_balancer {
            external_ips.extend(ipv4s(&svc.load_balancer));
        }
        let groups = index.endpoint_groups(&svc.namespace, &svc.name);
        for port in &svc.ports {
            let protocol = match port.protocol.as_str() {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                _ => continue,
            };
            services.push(L4Service {
                service: ObjectRef::new(svc.namespace.as_str(), svc.name.as_str()),
                port_name: port.name.as_str().into(),
                protocol,
                port: port.port,
                cluster_ips: cluster_ips.clone(),
                node_port: port.node_port.filter(|_| node_ports),
                external_ips: external_ips.clone(),
                internal_backends: backends(&groups, port, node, svc.internal_local),
                external_backends: backends(&groups, port, node, svc.external_local),
                external_local: svc.external_local,
                affinity_timeout: svc.affinity_timeout,
                health_check_node_port: svc
                    .health_check_node_port
                    .filter(|_| load_balancer && svc.external_local),
            });
        }
    }
    services.sort_by(|a, b| {
        (&a.service, &a.port_name, a.protocol).cmp(&(&b.service, &b.port_name, b.protocol))
    });
    ServiceTable { services }
}
