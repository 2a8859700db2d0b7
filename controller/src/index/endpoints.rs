//! Endpoints (v1): the older form, still written by hand for Services without selector.
//! Each subset becomes an [`EndpointGroup`]; `addresses` are ready, `notReadyAddresses` are
//! neither ready nor serving (v1 Endpoints cannot say more).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};

use super::endpoint_slice::{EndpointEntry, EndpointGroup, EndpointPort};
use crate::object::{FieldError, port_number, protocol};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsEntry {
    pub groups: Vec<EndpointGroup>,
}

impl EndpointsEntry {
    pub(super) fn parse(endpoints: &Endpoints) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let groups = endpoints
            .subsets
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, subset)| {
                let at = format!("subsets[{i}]");
                let ports = subset
                    .ports
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(j, p)| {
                        match port_number(p.port, format!("{at}.ports[{j}].port")) {
                            Ok(port) => Some(EndpointPort {
                                name: p.name.clone().unwrap_or_default(),
                                port,
                                protocol: protocol(&p.protocol),
                            }),
                            Err(e) => {
                                errors.push(e);
                                None
                            }
                        }
                    })
                    .collect();
                let mut entries =
                    |list: &Option<Vec<EndpointAddress>>, field: &str, ready: bool| {
                        list.iter()
                            .flatten()
                            .enumerate()
                            .filter_map(|(j, a)| match a.ip.parse::<IpAddr>() {
                                Ok(ip) => Some(EndpointEntry {
                                    addresses: vec![ip],
                                    ready,
                                    serving: ready,
                                    terminating: false,
                                    node_name: a.node_name.as_deref().map(Into::into),
                                }),
                                Err(_) => {
                                    errors.push(FieldError::new(
                                        format!("{at}.{field}[{j}].ip"),
                                        format!("{:?} is not an IP address", a.ip),
                                    ));
                                    None
                                }
                            })
                            .collect::<Vec<_>>()
                    };
                let mut endpoints = entries(&subset.addresses, "addresses", true);
                endpoints.extend(entries(
                    &subset.not_ready_addresses,
                    "notReadyAddresses",
                    false,
                ));
                EndpointGroup { ports, endpoints }
            })
            .collect();
        if errors.is_empty() {
            Ok(EndpointsEntry { groups })
        } else {
            Err(errors)
        }
    }
}
