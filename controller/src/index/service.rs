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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortEntry {
    /// `""` for the unnamed port of a single-port Service; EndpointSlice ports carry the same
    /// name, which is how a Service port finds its endpoints' port.
    pub name: String,
    pub port: u16,
    pub protocol: String,
    pub target_port: Option<IntOrString>,
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
