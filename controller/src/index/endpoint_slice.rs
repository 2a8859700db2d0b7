//! EndpointSlice (discovery.k8s.io/v1): the endpoints of a Service, with their conditions.
//! Also the shape v1 Endpoints are mapped to (see `endpoints.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::object::{FieldError, port_number, protocol};

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEntry {
    /// The owning Service, from the `kubernetes.io/service-name` label; a slice without it
    /// belongs to no Service.
    pub service: Option<String>,
    pub group: EndpointGroup,
}

/// Endpoints that share one set of ports: an EndpointSlice, or one subset of v1 Endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointGroup {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<EndpointEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    /// Matches the `name` of a Service port (`""` when unnamed).
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

/// One endpoint and its conditions, with the API's defaults for unset conditions applied:
/// unknown `ready` and `serving` count as true, unknown `terminating` as false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    pub addresses: Vec<IpAddr>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<Arc<str>>,
}

impl SliceEntry {
    pub(super) fn parse(slice: &EndpointSlice) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let want_v6 = match slice.address_type.as_str() {
            "IPv4" => Some(false),
            "IPv6" => Some(true),
            // Deprecated and unused by kube-proxy: such a slice holds no address ferry uses.
            "FQDN" => None,
            other => {
                errors.push(FieldError::new(
                    "addressType",
                    format!("unsupported value {other:?}: must be IPv4, IPv6 or FQDN"),
                ));
                None
            }
        };
        let ports = slice
            .ports
            .iter()
            .flatten()
            .enumerate()
            // A port without number means "all ports" to some consumers; ferry needs a number.
            .filter_map(
                |(i, p)| match port_number(p.port?, format!("ports[{i}].port")) {
                    Ok(port) => Some(EndpointPort {
                        name: p.name.clone().unwrap_or_default(),
                        port,
                        protocol: protocol(&p.protocol),
                    }),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            )
            .collect();
        let endpoints = match want_v6 {
            None => Vec::new(),
            Some(v6) => slice
                .endpoints
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, e)| {
                    let addresses = e
                        .addresses
                        .iter()
                        .enumerate()
                        .filter_map(|(j, a)| match a.parse::<IpAddr>() {
                            Ok(ip) if ip.is_ipv6() == v6 => Some(ip),
                            _ => {
                                errors.push(FieldError::new(
                                    format!("endpoints[{i}].addresses[{j}]"),
                                    format!("{a:?} is not an {} address", slice.address_type),
                                ));
                                None
                            }
                        })
                        .collect();
                    let c = e.conditions.clone().unwrap_or_default();
                    let ready = c.ready.unwrap_or(true);
                    EndpointEntry {
                        addresses,
                        ready,
                        serving: c.serving.unwrap_or(ready),
                        terminating: c.terminating.unwrap_or(false),
                        node_name: e.node_name.as_deref().map(Into::into),
                    }
                })
                .collect(),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SliceEntry {
            service: slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .cloned(),
            group: EndpointGroup { ports, endpoints },
        })
    }
}
