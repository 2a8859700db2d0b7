//! Ingress (networking.k8s.io/v1): rules, paths and backends, validated as the API server
//! validates them, with hosts and paths already parsed for matching.

use std::collections::BTreeMap;
use std::fmt;

use ferry_model::{HostMatch, ObjectRef, PathMatch, PathType};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::jiff::Timestamp;

use crate::object::{FieldError, ObjectKey, port_number};

/// The legacy class annotation, still common in manifests written for ingress-nginx.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Annotations with this prefix are ferry's (read by `translate::annotations`).
pub const ANNOTATION_PREFIX: &str = "ferry.dev/";

#[derive(Debug, Clone, PartialEq)]
pub struct IngressEntry {
    pub key: ObjectRef,
    pub uid: Option<String>,
    pub created: Option<Timestamp>,
    /// `spec.ingressClassName`.
    pub class_name: Option<String>,
    /// The legacy `kubernetes.io/ingress.class` annotation.
    pub class_annotation: Option<String>,
    /// The `ferry.dev/` annotations, as written; translation interprets them.
    pub annotations: BTreeMap<String, String>,
    pub default_backend: Option<BackendRef>,
    pub rules: Vec<RuleEntry>,
    pub tls: Vec<TlsEntry>,
}

/// One entry of `spec.tls`: hosts served over HTTPS with a Secret's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEntry {
    /// Empty: the hosts of this Ingress's rules.
    pub hosts: Vec<HostMatch>,
    pub secret_name: Option<String>,
    /// Where it was written, e.g. `spec.tls[0]`.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleEntry {
    pub host: HostMatch,
    /// `None` when the rule has no `http` section: the host exists, with no paths.
    pub paths: Option<Vec<PathEntry>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathEntry {
    pub path: PathMatch,
    pub backend: BackendRef,
}

/// A backend and where it was written, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    pub field: String,
    pub target: BackendTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTarget {
    Service {
        name: String,
        port: PortRef,
    },
    /// `backend.resource`: ferry serves Services only.
    Resource {
        kind: String,
        name: String,
    },
}

/// `service.port.number` or `service.port.name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl IngressEntry {
    pub(super) fn parse(key: &ObjectKey, ingress: &Ingress) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let annotations = ingress.metadata.annotations.as_ref();
        let annotation = |name: &str| annotations.and_then(|a| a.get(name)).cloned();
        let spec = ingress.spec.clone().unwrap_or_default();

        let default_backend = spec
            .default_backend
            .as_ref()
            .and_then(|b| backend(b, "spec.defaultBackend", &mut errors));
        let mut rules = Vec::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let at = format!("spec.rules[{i}]");
            let host = match HostMatch::parse(rule.host.as_deref()) {
                Ok(host) => host,
                Err(e) => {
                    errors.push(FieldError::new(format!("{at}.host"), e));
                    continue;
                }
            };
            let paths = rule.http.as_ref().map(|http| {
                if http.paths.is_empty() {
                    errors.push(FieldError::new(
                        format!("{at}.http.paths"),
                        "required: at least one path",
                    ));
                }
                http.paths
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| {
                        let at = format!("{at}.http.paths[{j}]");
                        let path = path(p.path.as_deref(), &p.path_type, &at, &mut errors);
                        let backend = backend(&p.backend, &format!("{at}.backend"), &mut errors);
                        Some(PathEntry {
                            path: path?,
                            backend: backend?,
                        })
                    })
                    .collect()
            });
            rules.push(RuleEntry { host, paths });
        }
        let tls = spec
            .tls
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| {
                let field = format!("spec.tls[{i}]");
                let hosts = t
                    .hosts
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(j, h)| match HostMatch::parse(Some(h)) {
                        Ok(HostMatch::Any) => {
                            errors.push(FieldError::new(
                                format!("{field}.hosts[{j}]"),
                                "must not be empty",
                            ));
                            None
                        }
                        Ok(host) => Some(host),
                        Err(e) => {
                            errors.push(FieldError::new(format!("{field}.hosts[{j}]"), e));
                            None
                        }
                    })
                    .collect();
                TlsEntry {
                    hosts,
                    secret_name: t.secret_name.clone().filter(|s| !s.is_empty()),
                    field,
                }
            })
            .collect();
        if spec.default_backend.is_none() && spec.rules.as_ref().is_none_or(Vec::is_empty) {
            errors.push(FieldError::new(
                "spec",
                "either defaultBackend or rules must be specified",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(IngressEntry {
            key: key.object_ref(),
            uid: ingress.metadata.uid.clone(),
            created: ingress.metadata.creation_timestamp.as_ref().map(|t| t.0),
            class_name: spec.ingress_class_name.clone(),
            class_annotation: annotation(LEGACY_CLASS_ANNOTATION),
            annotations: annotations
                .iter()
                .flat_map(|a| a.iter())
                .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_backend,
            rules,
            tls,
        })
    }

    /// `status.loadBalancer.ingress` of an Ingress, as IPs or hostnames.
    pub fn status(ingress: &Ingress) -> Vec<String> {
        ingress
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
            .collect()
    }

    /// The class this Ingress asks for: `spec.ingressClassName`, else the legacy annotation.
    pub fn class(&self) -> Option<&str> {
        self.class_name
            .as_deref()
            .or(self.class_annotation.as_deref())
    }
}

fn path(
    path: Option<&str>,
    path_type: &str,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<PathMatch> {
    let (kind, strict) = match path_type {
        "Exact" => (PathType::Exact, true),
        "Prefix" => (PathType::Prefix, true),
        // Left to implementations; ferry treats it as Prefix, without the strict path checks.
        "ImplementationSpecific" => (PathType::Prefix, false),
        "" => {
            errors.push(FieldError::new(format!("{at}.pathType"), "required"));
            return None;
        }
        other => {
            errors.push(FieldError::new(
                format!("{at}.pathType"),
                format!(
                    "unsupported value {other:?}: must be Exact, Prefix or ImplementationSpecific"
                ),
            ));
            return None;
        }
    };
    let path = match path {
        Some(p) if !p.is_empty() => p,
        _ if !strict => "/",
        _ => {
            errors.push(FieldError::new(
                format!("{at}.path"),
                format!("required for pathType {path_type}"),
            ));
            return None;
        }
    };
    PathMatch::parse(path, kind, strict)
        .map_err(|e| errors.push(FieldError::new(format!("{at}.path"), e)))
        .ok()
}

fn backend(b: &IngressBackend, at: &str, errors: &mut Vec<FieldError>) -> Option<BackendRef> {
    let target = match (&b.service, &b.resource) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                at,
                "service and resource are mutually exclusive",
            ));
            return None;
        }
        (None, None) => {
            errors.push(FieldError::new(
                at,
                "one of service or resource is required",
            ));
            return None;
        }
        (None, Some(r)) => BackendTarget::Resource {
            kind: r.kind.clone(),
            name: r.name.clone(),
        },
        (Some(s), None) => {
            if s.name.is_empty() {
                errors.push(FieldError::new(format!("{at}.service.name"), "required"));
            }
            let port = match s.port.as_ref().map(|p| (p.number, p.name.as_deref())) {
                Some((Some(n), None)) => port_number(n, format!("{at}.service.port.number"))
                    .map(PortRef::Number)
                    .map_err(|e| errors.push(e))
                    .ok(),
                Some((None, Some(name))) if !name.is_empty() => {
                    Some(PortRef::Name(name.to_owned()))
                }
                Some((Some(_), Some(_))) => {
                    errors.push(FieldError::new(
                        format!("{at}.service.port"),
                        "number and name are mutually exclusive",
                    ));
                    None
                }
                _ => {
                    errors.push(FieldError::new(
                        format!("{at}.service.port"),
                        "one of number or name is required",
                    ));
                    None
                }
            };
            BackendTarget::Service {
                name: s.name.clone(),
                port: port?,
            }
        }
    };
    Some(BackendRef {
        field: at.to_owned(),
        target,
    })
}
