//! Secret (v1) of type `kubernetes.io/tls`: `tls.crt` (the chain, leaf first) and `tls.key`,
//! parsed once, when the Secret changes, into what the TLS handshake needs. A Secret that does
//! not parse is kept with its error: Ingresses referring to it are told why, and their hosts get
//! the default certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_model::{ObjectRef, TlsCertificate};
use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

/// The Secret type that carries a certificate and key.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Why a TLS Secret cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum SecretError {
    #[error("tls.crt is missing")]
    MissingCertificate,
    #[error("tls.key is missing")]
    MissingKey,
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.crt is not a valid PEM certificate chain: {0}")]
    BadCertificate(String),
    #[error("tls.key holds no PEM private key (PKCS#1, PKCS#8 or SEC1)")]
    NoKey,
    #[error("tls.key is not a usable private key: {0}")]
    BadKey(String),
    #[error("tls.key does not match the certificate in tls.crt")]
    KeyMismatch,
}

/// A TLS Secret: its raw data (to tell whether it changed) and what it parsed into.
#[derive(Debug, Clone)]
pub struct SecretEntry {
    data: (Vec<u8>, Vec<u8>),
    pub tls: Result<Arc<TlsCertificate>, SecretError>,
}

impl PartialEq for SecretEntry {
    fn eq(&self, other: &Self) -> bool {
        // The parse result follows from the data.
        self.data == other.data
    }
}

impl SecretEntry {
    /// `None` for Secrets of other types, which ferry does not read.
    pub(super) fn parse(secret_ref: ObjectRef, secret: &Secret) -> Option<Self> {
        if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
            return None;
        }
        // As the API server does, stringData is written over data.
        let mut data: BTreeMap<&str, &[u8]> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k, v.as_bytes());
        }
        let crt = data.get("tls.crt").copied();
        let key = data.get("tls.key").copied();
        let tls = match (crt, key) {
            (None, _) => Err(SecretError::MissingCertificate),
            (_, None) => Err(SecretError::MissingKey),
            (Some(crt), Some(key)) => load(secret_ref, crt, key).map(Arc::new),
        };
        Some(SecretEntry {
            data: (
                crt.unwrap_or_default().to_vec(),
                key.unwrap_or_default().to_vec(),
            ),
            tls,
        })
    }
}

/// Parses a PEM chain and key (RSA, ECDSA P-256/P-384 or Ed25519; PKCS#1, PKCS#8 or SEC1) and
/// checks that they belong together.
pub fn load(secret: ObjectRef, crt: &[u8], key: &[u8]) -> Result<TlsCertificate, SecretError> {
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SecretError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(SecretError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
        pem::Error::NoItemsFound => SecretError::NoKey,
        e => SecretError::BadKey(e.to_string()),
    })?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| SecretError::BadCertificate(e.to_string()))?;
    let not_after = leaf.validity().not_after.timestamp();
    let mut names: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            leaf.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            SecretError::KeyMismatch
        }
        e => SecretError::BadKey(e.to_string()),
    })?;
    Ok(TlsCertificate {
        secret,
        key: Arc::new(key),
        not_after,
        names,
    })
}
