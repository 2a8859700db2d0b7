//! Service (v1): its ports, and for `type: ExternalName` the name it stands for.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::{FieldError, ObjectKey, port_number, protocol};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    pub ports: Vec<ServicePortEntry>,
    /// `spec.externalName` of a `type: ExternalName` Service.
    pub external_name: Option<String>,
    /// `spec.clusterIP: None`: no virtual IP; clients use the endpoints directly.
    pub headless: bool,
    /// `status.loadBalancer.ingress`: IPs or hostnames of the load balancer in front of it.
    pub load_balancer: Vec<String>,
    /// `spec.type` (`ClusterIP` when unset).
    pub type_: String,
    /// `spec.clusterIPs` (or `spec.clusterIP`), without `None`.
    pub cluster_ips: Vec<String>,
    pub external_ips: Vec<String>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP`, with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    pub health_check_node_port: Option<u16>,
    /// The `service.kubernetes.io/service-proxy-name` label: another proxy implements it.
    pub proxy_name: Option<String>,
}

/// The label by which a Service asks for a proxy other than the default one.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset: three hours.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortEntry {
    /// `""` for the unnamed port of a single-port Service; EndpointSlice ports carry the same
    /// name, which is how a Service port finds its endpoints' port.
    pub name: String,
    pub port: u16,
    pub protocol: String,
    pub target_port: Option<IntOrString>,
    pub node_port: Option<u16>,
}

impl ServiceEntry {
    pub(super) fn parse(key: &ObjectKey, service: &Service) -> Result<Self, Vec<FieldError>> {
        let spec = service.spec.clone().unwrap_or_default();
        let mut errors = Vec::new();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .enumerate()
            .filter_map(
                |(i, p)| match port_number(p.port, format!("spec.ports[{i}].port")) {
                    Ok(port) => Some(ServicePortEntry {
                        name: p.name.clone().unwrap_or_default(),
                        port,
                        protocol: protocol(&p.protocol),
                        target_port: p.target_port.clone(),
                        node_port: p
                            .node_port
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|&n| n > 0),
                    }),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            )
            .collect();
        let external_name = if spec.type_.as_deref() == Some("ExternalName") {
            match spec.external_name.as_deref() {
                Some(name) if !name.is_empty() => Some(name.trim_end_matches('.').to_owned()),
                _ => {
                    errors.push(FieldError::new(
                        "spec.externalName",
                        "required for type ExternalName",
                    ));
                    None
                }
            }
        } else {
            None
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ServiceEntry {
            namespace: key.namespace.clone().unwrap_or_default(),
            name: key.name.clone(),
            ports,
            external_name,
            headless: spec.cluster_ip.as_deref() == Some("None"),
            type_: spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_owned()),
            cluster_ips: spec
                .cluster_ips
                .clone()
                .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
                .unwrap_or_default()
                .into_iter()
                .filter(|ip| !ip.is_empty() && ip != "None")
                .collect(),
            external_ips: spec.external_ips.clone().unwrap_or_default(),
            external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            affinity_timeout: (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
                spec.session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
            }),
            health_check_node_port: spec
                .health_check_node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n > 0),
            proxy_name: service
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_PROXY_NAME_LABEL))
                .cloned(),
            load_balancer: service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect(),
        })
    }
}
