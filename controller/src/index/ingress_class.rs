//! IngressClass: which controller implements a class, and whether it is the default class.

use k8s_openapi::api::networking::v1::IngressClass;

/// The annotation that makes a class the default for Ingresses that name none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassEntry {
    pub name: String,
    /// `spec.controller`; empty when unset.
    pub controller: String,
    pub is_default: bool,
}

impl IngressClassEntry {
    pub(super) fn parse(class: &IngressClass) -> Self {
        IngressClassEntry {
            name: class.metadata.name.clone().unwrap_or_default(),
            controller: class
                .spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_default(),
            is_default: class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true"),
        }
    }
}
