//! The index: every object ferry reads, validated and reduced to what translation needs.
//!
//! Sources apply and delete objects; translation reads the index. One file per kind applies
//! that kind. An object that fails validation is refused with an [`ObjectError`] naming the
//! field, and the previous version of the object (if any) stays in the index: a bad edit never
//! removes what was working.

mod endpoint_slice;
mod endpoints;
mod ingress;
mod ingress_class;
mod node;
mod secret;
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

pub use endpoint_slice::{
    EndpointEntry, EndpointGroup, EndpointPort, SERVICE_NAME_LABEL, SliceEntry,
};
pub use endpoints::EndpointsEntry;
pub use ingress::{
    ANNOTATION_PREFIX, BackendRef, BackendTarget, IngressEntry, LEGACY_CLASS_ANNOTATION, PathEntry,
    PortRef, RuleEntry, TlsEntry,
};
pub use ingress_class::{DEFAULT_CLASS_ANNOTATION, IngressClassEntry};
pub use node::NodeEntry;
pub use secret::{SecretEntry, SecretError, TLS_SECRET_TYPE, load as load_certificate};
pub use service::{
    DEFAULT_AFFINITY_TIMEOUT, SERVICE_PROXY_NAME_LABEL, ServiceEntry, ServicePortEntry,
};

use crate::object::{Kind, ObjectError, ObjectKey};

/// A Kubernetes object of a kind ferry reads.
#[derive(Debug, Clone)]
pub enum Object {
    Ingress(Box<Ingress>),
    IngressClass(Box<IngressClass>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Endpoints(Box<Endpoints>),
    Secret(Box<Secret>),
    Node(Box<Node>),
}

impl Object {
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Ingress(o) => ObjectKey::of(Kind::Ingress, &o.metadata),
            Object::IngressClass(o) => ObjectKey::of(Kind::IngressClass, &o.metadata),
            Object::Service(o) => ObjectKey::of(Kind::Service, &o.metadata),
            Object::EndpointSlice(o) => ObjectKey::of(Kind::EndpointSlice, &o.metadata),
            Object::Endpoints(o) => ObjectKey::of(Kind::Endpoints, &o.metadata),
            Object::Secret(o) => ObjectKey::of(Kind::Secret, &o.metadata),
            Object::Node(o) => ObjectKey::of(Kind::Node, &o.metadata),
        }
    }
}

/// Namespace and name.
pub type NsName = (String, String);

fn ns_name(key: &ObjectKey) -> NsName {
    (key.namespace.clone().unwrap_or_default(), key.name.clone())
}

/// Equality means "translates to the same snapshot": Nodes and Ingress statuses, which only
/// the status writer reads, are left out, so writing a status or a Node heartbeat never causes
/// a new snapshot.
#[derive(Debug, Default, Clone)]
pub struct Index {
    ingresses: BTreeMap<NsName, Arc<IngressEntry>>,
    classes: BTreeMap<String, Arc<IngressClassEntry>>,
    services: BTreeMap<NsName, Arc<ServiceEntry>>,
    /// EndpointSlices by namespace and slice name.
    slices: BTreeMap<NsName, Arc<SliceEntry>>,
    /// Names of the slices of each Service, by namespace and service name.
    slices_by_service: BTreeMap<NsName, BTreeSet<String>>,
    endpoints: BTreeMap<NsName, Arc<EndpointsEntry>>,
    /// TLS Secrets only.
    secrets: BTreeMap<NsName, Arc<SecretEntry>>,
    nodes: BTreeMap<String, Arc<NodeEntry>>,
    ingress_status: BTreeMap<NsName, Vec<String>>,
}

impl PartialEq for Index {
    fn eq(&self, other: &Self) -> bool {
        self.ingresses == other.ingresses
            && self.classes == other.classes
            && self.services == other.services
            && self.slices == other.slices
            && self.slices_by_service == other.slices_by_service
            && self.endpoints == other.endpoints
            && self.secrets == other.secrets
    }
}

impl Index {
    /// Adds or replaces an object. A refused object leaves the index as it was.
    pub fn apply(&mut self, object: &Object) -> Result<(), ObjectError> {
        let key = object.key();
        let refuse = |errors| ObjectError {
            object: key.clone(),
            errors,
        };
        if key.name.is_empty() {
            return Err(refuse(vec![crate::object::FieldError::new(
                "metadata.name",
                "required",
            )]));
        }
        match object {
            Object::Ingress(o) => {
                let entry = IngressEntry::parse(&key, o).map_err(refuse)?;
                self.ingress_status
                    .insert(ns_name(&key), IngressEntry::status(o));
                self.ingresses.insert(ns_name(&key), Arc::new(entry));
            }
            Object::IngressClass(o) => {
                let entry = IngressClassEntry::parse(o);
                self.classes.insert(key.name.clone(), Arc::new(entry));
            }
            Object::Service(o) => {
                let entry = ServiceEntry::parse(&key, o).map_err(refuse)?;
                self.services.insert(ns_name(&key), Arc::new(entry));
            }
            Object::EndpointSlice(o) => {
                let entry = SliceEntry::parse(o).map_err(refuse)?;
                self.remove_slice(&key);
                let (ns, name) = ns_name(&key);
                if let Some(service) = &entry.service {
                    self.slices_by_service
                        .entry((ns.clone(), service.clone()))
                        .or_default()
                        .insert(name.clone());
                }
                self.slices.insert((ns, name), Arc::new(entry));
            }
            Object::Endpoints(o) => {
                let entry = EndpointsEntry::parse(o).map_err(refuse)?;
                self.endpoints.insert(ns_name(&key), Arc::new(entry));
            }
            Object::Secret(o) => match SecretEntry::parse(key.object_ref(), o) {
                Some(entry) => drop(self.secrets.insert(ns_name(&key), Arc::new(entry))),
                // No longer (or never) a TLS Secret.
                None => drop(self.secrets.remove(&ns_name(&key))),
            },
            Object::Node(o) => {
                let entry = NodeEntry::parse(o);
                self.nodes.insert(key.name.clone(), Arc::new(entry));
            }
        }
        Ok(())
    }

    /// Removes an object; removing one that is not there is not an error.
    pub fn delete(&mut self, key: &ObjectKey) {
        match key.kind {
            Kind::Ingress => {
                self.ingresses.remove(&ns_name(key));
                self.ingress_status.remove(&ns_name(key));
            }
            Kind::IngressClass => drop(self.classes.remove(&key.name)),
            Kind::Service => drop(self.services.remove(&ns_name(key))),
            Kind::EndpointSlice => self.remove_slice(key),
            Kind::Endpoints => drop(self.endpoints.remove(&ns_name(key))),
            Kind::Secret => drop(self.secrets.remove(&ns_name(key))),
            Kind::Node => drop(self.nodes.remove(&key.name)),
        }
    }

    fn remove_slice(&mut self, key: &ObjectKey) {
        let (ns, name) = ns_name(key);
        let Some(old) = self.slices.remove(&(ns.clone(), name.clone())) else {
            return;
        };
        if let Some(service) = &old.service {
            let owner = (ns, service.clone());
            if let Some(names) = self.slices_by_service.get_mut(&owner) {
                names.remove(&name);
                if names.is_empty() {
                    self.slices_by_service.remove(&owner);
                }
            }
        }
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.classes.len()
            + self.services.len()
            + self.slices.len()
            + self.endpoints.len()
            + self.secrets.len()
            + self.nodes.len()
    }

    /// Replaces every object of `kind` with `objects`, as a relist from the API server says
    /// what exists now: objects not listed are deleted. A refused object keeps its previous
    /// version; the refusals are returned.
    pub fn replace(&mut self, kind: Kind, objects: &[Object]) -> Vec<ObjectError> {
        let listed: std::collections::HashSet<ObjectKey> =
            objects.iter().map(Object::key).collect();
        for key in self.keys(kind) {
            if !listed.contains(&key) {
                self.delete(&key);
            }
        }
        objects.iter().filter_map(|o| self.apply(o).err()).collect()
    }

    /// Keys of every object of `kind` held.
    pub fn keys(&self, kind: Kind) -> Vec<ObjectKey> {
        let namespaced = |map: Vec<&NsName>| {
            map.into_iter()
                .map(|(ns, name)| ObjectKey::new(kind, Some(ns), name))
                .collect()
        };
        match kind {
            Kind::Ingress => namespaced(self.ingresses.keys().collect()),
            Kind::Service => namespaced(self.services.keys().collect()),
            Kind::EndpointSlice => namespaced(self.slices.keys().collect()),
            Kind::Endpoints => namespaced(self.endpoints.keys().collect()),
            Kind::Secret => namespaced(self.secrets.keys().collect()),
            Kind::IngressClass => self
                .classes
                .keys()
                .map(|n| ObjectKey::new(kind, None, n))
                .collect(),
            Kind::Node => self
                .nodes
                .keys()
                .map(|n| ObjectKey::new(kind, None, n))
                .collect(),
        }
    }

    /// The `status.loadBalancer.ingress` an Ingress has now.
    pub fn ingress_status(&self, namespace: &str, name: &str) -> &[String] {
        self.ingress_status
            .get(&(namespace.to_owned(), name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn services(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.values().map(|s| &**s)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values().map(|n| &**n)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ingresses(&self) -> impl Iterator<Item = &IngressEntry> {
        self.ingresses.values().map(|e| &**e)
    }

    pub fn ingress_class(&self, name: &str) -> Option<&IngressClassEntry> {
        self.classes.get(name).map(|e| &**e)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|e| &**e)
    }

    /// A TLS Secret.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretEntry> {
        self.secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|e| &**e)
    }

    /// The endpoints of a Service: its EndpointSlices when it has any, else the subsets of its
    /// v1 Endpoints object (hand-written Endpoints for a Service without selector).
    pub fn endpoint_groups(&self, namespace: &str, service: &str) -> Vec<&EndpointGroup> {
        let key = (namespace.to_owned(), service.to_owned());
        if let Some(names) = self.slices_by_service.get(&key) {
            return names
                .iter()
                .filter_map(|n| self.slices.get(&(namespace.to_owned(), n.clone())))
                .map(|s| &s.group)
                .collect();
        }
        self.endpoints
            .get(&key)
            .map(|e| e.groups.iter().collect())
            .unwrap_or_default()
    }

    /// Every Service name that has endpoints, with its endpoint groups.
    pub fn services_with_endpoints(&self) -> impl Iterator<Item = (&NsName, Vec<&EndpointGroup>)> {
        let sliced = self.slices_by_service.keys();
        let unsliced = self
            .endpoints
            .keys()
            .filter(|k| !self.slices_by_service.contains_key(*k));
        sliced
            .chain(unsliced)
            .map(|k| (k, self.endpoint_groups(&k.0, &k.1)))
    }
}
