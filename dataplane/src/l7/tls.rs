//! TLS termination: the certificate for each handshake is chosen by SNI from the snapshot being
//! served when the handshake happens, so a changed Secret is used by the next handshake with no
//! listener rebuilt and no connection dropped.

use std::sync::Arc;

use ferry_model::HostMatch;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;

use crate::state::Router;

/// Picks the certificate of a handshake: the SNI name's (exact, then wildcard), else the
/// snapshot's default certificate, else the certificate generated at start.
#[derive(Debug)]
pub struct CertResolver {
    router: Arc<Router>,
    fallback: Arc<CertifiedKey>,
}

impl CertResolver {
    pub fn new(router: Arc<Router>, fallback: Arc<CertifiedKey>) -> Self {
        CertResolver { router, fallback }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let from_snapshot = self.router.current().and_then(|state| {
            let certs = &state.snapshot.certs;
            let found = match hello.server_name() {
                Some(name) => certs.lookup(name),
                None => certs.get(&HostMatch::Any),
            };
            found.map(|c| c.key.clone())
        });
        Some(from_snapshot.unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The default certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate the self-signed default certificate: {0}")]
pub struct GenerateError(String);

/// A self-signed certificate (ECDSA P-256) for handshakes no configured certificate answers,
/// as other ingress controllers serve their "fake certificate".
pub fn self_signed_certificate() -> Result<Arc<CertifiedKey>, GenerateError> {
    let error = |e: &dyn std::fmt::Display| GenerateError(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| error(&e))?;
    let mut params =
        rcgen::CertificateParams::new(vec!["ferry.invalid".to_owned()]).map_err(|e| error(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ferry default certificate");
    let cert = params.self_signed(&key).map_err(|e| error(&e))?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = rustls::crypto::ring::default_provider();
    let certified =
        CertifiedKey::from_der(vec![cert.der().clone()], der, &provider).map_err(|e| error(&e))?;
    Ok(Arc::new(certified))
}
