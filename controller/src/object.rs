//! Names of Kubernetes objects and of their fields, for errors users can act on.

use std::fmt;

use ferry_model::ObjectRef;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The kinds ferry reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ingress,
    IngressClass,
    Service,
    EndpointSlice,
    Endpoints,
    Secret,
    Node,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::Secret => "Secret",
            Kind::Node => "Node",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::IngressClass | Kind::Node)
    }

    pub const ALL: [Kind; 7] = [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Endpoints,
        Kind::Secret,
        Kind::Node,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kind, namespace (for namespaced kinds) and name of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The key of an object from its metadata; a namespaced object without namespace is in
    /// `default`, as `kubectl apply` would put it.
    pub fn of(kind: Kind, meta: &ObjectMeta) -> Self {
        let namespace = kind
            .namespaced()
            .then(|| meta.namespace.as_deref().unwrap_or("default").to_owned());
        ObjectKey {
            kind,
            namespace,
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// Namespace and name as the model labels them (cluster-scoped objects have namespace "").
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(self.namespace.as_deref().unwrap_or(""), self.name.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(unnamed)"
        } else {
            &self.name
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{name}", self.kind),
            None => write!(f, "{} {name}", self.kind),
        }
    }
}

/// One problem with one field of an object, as the API server would report it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field, as in `spec.rules[0].http.paths[1].pathType`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        FieldError {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// An object the index refused, with every reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {}", join(errors))]
pub struct ObjectError {
    pub object: ObjectKey,
    pub errors: Vec<FieldError>,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A port number from the API (`i32`), checked to be a port.
pub(crate) fn port_number(value: i32, field: impl Into<String>) -> Result<u16, FieldError> {
    u16::try_from(value).ok().filter(|&p| p > 0).ok_or_else(|| {
        FieldError::new(
            field,
            format!("{value} is not a port: must be between 1 and 65535"),
        )
    })
}

/// A port's protocol, `TCP` when unset as the API defaults it.
pub(crate) fn protocol(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "TCP".to_owned())
}
