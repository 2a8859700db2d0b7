//! Node (v1): the addresses Ingress status can publish when ferry runs on the nodes'
//! network.

use k8s_openapi::api::core::v1::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    pub internal_addresses: Vec<String>,
    pub external_addresses: Vec<String>,
}

impl NodeEntry {
    pub(super) fn parse(node: &Node) -> Self {
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten();
        let (mut internal, mut external) = (Vec::new(), Vec::new());
        for a in addresses {
            match a.type_.as_str() {
                "InternalIP" => internal.push(a.address.clone()),
                "ExternalIP" => external.push(a.address.clone()),
                _ => {}
            }
        }
        NodeEntry {
            name: node.metadata.name.clone().unwrap_or_default(),
            internal_addresses: internal,
            external_addresses: external,
        }
    }

    /// The address clients reach this node at: an external IP if it has one, else internal.
    pub fn public_address(&self) -> Option<&str> {
        self.external_addresses
            .first()
            .or(self.internal_addresses.first())
            .map(String::as_str)
    }
}
