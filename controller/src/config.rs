//! Settings of the controller, parsed once at start by the binary and passed in as data.

use std::time::Duration;

use ferry_model::{LoadBalance, ObjectRef};

/// The `spec.controller` value of IngressClasses that ferry implements.
pub const CONTROLLER_NAME: &str = "ferry.dev/ingress-controller";

/// How Kubernetes objects become a snapshot.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The IngressClass name this ferry serves (`spec.ingressClassName` or the legacy
    /// `kubernetes.io/ingress.class` annotation).
    pub ingress_class: String,
    /// Also serve Ingresses that name no class, even when our class is not the default one
    /// (ingress-nginx's `--watch-ingress-without-class`).
    pub watch_ingress_without_class: bool,
    /// Balancing policy for upstreams whose Ingress does not choose one by annotation.
    pub default_load_balance: LoadBalance,
    /// Quiet time collected before a rebuild, so a burst of changes is one rebuild.
    pub debounce: Duration,
    /// The `kubernetes.io/tls` Secret whose certificate answers handshakes no Ingress host
    /// matches (and those without SNI); without it the data plane generates a self-signed one.
    pub default_certificate: Option<ObjectRef>,
    /// The node this replica runs on (the downward API's `spec.nodeName`).
    pub node_name: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            ingress_class: "ferry".to_owned(),
            watch_ingress_without_class: false,
            default_load_balance: LoadBalance::RoundRobin,
            debounce: Duration::from_millis(100),
            default_certificate: None,
            node_name: None,
        }
    }
}
