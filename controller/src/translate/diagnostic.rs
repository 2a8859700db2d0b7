//! What translation tells users about their objects. None of these stops a rebuild: the
//! affected path answers 503, or is not served, and the rest of the world is unaffected.

use ferry_model::ObjectRef;

use crate::config::CONTROLLER_NAME;
use crate::index::{PortRef, SecretError};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum Diagnostic {
    #[error("Ingress {ingress}: {field}: service {service:?} not found; requests get 503")]
    UnknownService {
        ingress: ObjectRef,
        field: String,
        service: String,
    },
    #[error("Ingress {ingress}: {field}: service {service:?} has no port {port}; requests get 503")]
    UnknownServicePort {
        ingress: ObjectRef,
        field: String,
        service: String,
        port: PortRef,
    },
    #[error(
        "Ingress {ingress}: {field}: the endpoints of service {service:?} have no port named {port_name:?} \
         (EndpointSlice and Service port names must match); requests get 503"
    )]
    NoEndpointPort {
        ingress: ObjectRef,
        field: String,
        service: String,
        port_name: String,
    },
    #[error(
        "Ingress {ingress}: {field}: resource backends ({kind} {name}) are not supported; this path is not served"
    )]
    UnsupportedResourceBackend {
        ingress: ObjectRef,
        field: String,
        kind: String,
        name: String,
    },
    #[error(
        "Ingress {loser}: {field}: {rule} is already defined by Ingress {winner}, which wins \
         (the older one; on equal age the first by namespace/name)"
    )]
    Conflict {
        winner: ObjectRef,
        loser: ObjectRef,
        field: String,
        /// What both define, e.g. `host a.example.com path Prefix /api`.
        rule: String,
    },
    #[error(
        "Ingress {ingress}: annotation {annotation}: {value:?} is not one of {expected}; using {fallback}"
    )]
    InvalidAnnotation {
        ingress: ObjectRef,
        annotation: &'static str,
        value: String,
        expected: String,
        fallback: String,
    },
    #[error("Ingress {ingress}: annotation {annotation} is not one ferry knows ({known})")]
    UnknownAnnotation {
        ingress: ObjectRef,
        annotation: String,
        known: String,
    },
    #[error(
        "IngressClass {class}: its controller is {controller:?}, not {CONTROLLER_NAME:?}; \
         ferry leaves Ingresses of class {class:?} alone"
    )]
    ClassOfOtherController { class: String, controller: String },
    #[error("Ingress {ingress}: {field}: no secretName; its hosts get the default certificate")]
    TlsWithoutSecret { ingress: ObjectRef, field: String },
    #[error(
        "Ingress {ingress}: {field}: Secret {secret:?} not found (or not of type kubernetes.io/tls); \
         its hosts get the default certificate"
    )]
    MissingSecret {
        ingress: ObjectRef,
        field: String,
        secret: String,
    },
    #[error(
        "Ingress {ingress}: {field}: Secret {secret} is not usable: {error}; its hosts get the default certificate"
    )]
    InvalidSecret {
        ingress: ObjectRef,
        field: String,
        secret: ObjectRef,
        error: SecretError,
    },
    #[error(
        "Ingress {ingress}: {field}: the certificate of Secret {secret} is not valid for host {host} \
         (it names {names}); clients will reject it"
    )]
    CertificateMismatch {
        ingress: ObjectRef,
        field: String,
        secret: ObjectRef,
        host: String,
        names: String,
    },
    #[error(
        "default certificate Secret {secret}: {reason}; the generated self-signed certificate is used"
    )]
    DefaultCertificate { secret: ObjectRef, reason: String },
}

impl Diagnostic {
    /// A short stable name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Diagnostic::UnknownService { .. } => "unknown_service",
            Diagnostic::UnknownServicePort { .. } => "unknown_service_port",
            Diagnostic::NoEndpointPort { .. } => "no_endpoint_port",
            Diagnostic::UnsupportedResourceBackend { .. } => "unsupported_backend",
            Diagnostic::Conflict { .. } => "conflict",
            Diagnostic::InvalidAnnotation { .. } => "invalid_annotation",
            Diagnostic::UnknownAnnotation { .. } => "unknown_annotation",
            Diagnostic::ClassOfOtherController { .. } => "class_of_other_controller",
            Diagnostic::TlsWithoutSecret { .. } => "tls_without_secret",
            Diagnostic::MissingSecret { .. } => "missing_secret",
            Diagnostic::InvalidSecret { .. } => "invalid_secret",
            Diagnostic::CertificateMismatch { .. } => "certificate_mismatch",
            Diagnostic::DefaultCertificate { .. } => "default_certificate",
        }
    }

    /// The kind in PascalCase, as the `reason` of a Kubernetes Event.
    pub fn reason(&self) -> String {
        self.kind()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The Ingress the problem is about, where there is one.
    pub fn ingress(&self) -> Option<&ObjectRef> {
        match self {
            Diagnostic::UnknownService { ingress, .. }
            | Diagnostic::UnknownServicePort { ingress, .. }
            | Diagnostic::NoEndpointPort { ingress, .. }
            | Diagnostic::UnsupportedResourceBackend { ingress, .. }
            | Diagnostic::InvalidAnnotation { ingress, .. }
            | Diagnostic::UnknownAnnotation { ingress, .. }
            | Diagnostic::TlsWithoutSecret { ingress, .. }
            | Diagnostic::MissingSecret { ingress, .. }
            | Diagnostic::InvalidSecret { ingress, .. }
            | Diagnostic::CertificateMismatch { ingress, .. } => Some(ingress),
            Diagnostic::Conflict { loser, .. } => Some(loser),
            Diagnostic::ClassOfOtherController { .. } | Diagnostic::DefaultCertificate { .. } => {
                None
            }
        }
    }
}
