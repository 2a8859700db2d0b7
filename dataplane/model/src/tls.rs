//! Certificates for TLS termination, chosen per handshake by SNI: the exact name, else the
//! wildcard of its parent domain, else the default certificate.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::host::{HostMap, HostMatch};
use crate::upstream::ObjectRef;

/// A certificate chain and its key, parsed once from a Secret.
#[derive(Debug)]
pub struct TlsCertificate {
    /// The `kubernetes.io/tls` Secret it came from.
    pub secret: ObjectRef,
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the end-entity certificate, in Unix seconds.
    pub not_after: i64,
    /// DNS names the certificate is valid for (its SANs; its CN when it has none), lowercase.
    pub names: Vec<String>,
}

impl TlsCertificate {
    /// Whether a client connecting to `host` would accept this certificate's names.
    pub fn covers(&self, host: &HostMatch) -> bool {
        self.names
            .iter()
            .any(|name| match (name.strip_prefix("*."), host) {
                (None, HostMatch::Exact(h)) => name == &**h,
                (Some(suffix), HostMatch::Exact(h)) => h
                    .split_once('.')
                    .is_some_and(|(_, parent)| parent == suffix),
                (Some(suffix), HostMatch::Wildcard(s)) => suffix == &**s,
                _ => false,
            })
    }
}

/// Certificates by host pattern; the any-host entry is the default certificate.
pub type CertStore = HostMap<Arc<TlsCertificate>>;
