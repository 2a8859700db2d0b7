//! TLS: which hosts are served over HTTPS, and with which certificate. Ingresses are read in
//! precedence order, so when two give a host different certificates the older one wins.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ferry_model::{CertStore, HostMatch, ObjectRef};

use super::Diagnostic;
use crate::config::ControllerConfig;
use crate::index::{Index, IngressEntry};

/// Hosts listed in a `tls` section of one of our Ingresses, whether or not their certificate
/// could be loaded (without one they get the default certificate, still over HTTPS).
#[derive(Debug, Default)]
pub(super) struct TlsHosts(HashSet<HostMatch>);

impl TlsHosts {
    /// Whether requests for `host` are served over HTTPS: the host is listed, or a wildcard
    /// covering it is.
    pub(super) fn has_tls(&self, host: &HostMatch) -> bool {
        match host {
            HostMatch::Any => false,
            HostMatch::Wildcard(_) => self.0.contains(host),
            HostMatch::Exact(name) => {
                self.0.contains(host)
                    || name.split_once('.').is_some_and(|(_, parent)| {
                        self.0.contains(&HostMatch::Wildcard(parent.into()))
                    })
            }
        }
    }
}

pub(super) fn certificates(
    index: &Index,
    ingresses: &[&IngressEntry],
    config: &ControllerConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> (CertStore, TlsHosts) {
    let mut store = CertStore::default();
    let mut tls_hosts = TlsHosts::default();
    let mut owners: HashMap<HostMatch, ObjectRef> = HashMap::new();
    for ingress in ingresses {
        let namespace = &*ingress.key.namespace;
        for entry in &ingress.tls {
            let hosts: Vec<HostMatch> = if entry.hosts.is_empty() {
                // No hosts: the hosts of this Ingress's rules.
                let rule_hosts: BTreeSet<&HostMatch> =
                    ingress.rules.iter().map(|r| &r.host).collect();
                rule_hosts
                    .into_iter()
                    .filter(|h| **h != HostMatch::Any)
                    .cloned()
                    .collect()
            } else {
                entry.hosts.clone()
            };
            tls_hosts.0.extend(hosts.iter().cloned());
            let field = format!("{}.secretName", entry.field);
            let Some(secret) = &entry.secret_name else {
                diagnostics.push(Diagnostic::TlsWithoutSecret {
                    ingress: ingress.key.clone(),
                    field: entry.field.clone(),
                });
                continue;
            };
            let certificate = match index.secret(namespace, secret).map(|s| &s.tls) {
                None => {
                    diagnostics.push(Diagnostic::MissingSecret {
                        ingress: ingress.key.clone(),
                        field,
                        secret: secret.clone(),
                    });
                    continue;
                }
                Some(Err(error)) => {
                    diagnostics.push(Diagnostic::InvalidSecret {
                        ingress: ingress.key.clone(),
                        field,
                        secret: ObjectRef::new(namespace, secret.as_str()),
                        error: error.clone(),
                    });
                    continue;
                }
                Some(Ok(certificate)) => certificate,
            };
            for host in &hosts {
                match store.get(host) {
                    Some(existing) if Arc::ptr_eq(existing, certificate) => {}
                    Some(existing) => diagnostics.push(Diagnostic::Conflict {
                        winner: owners[host].clone(),
                        loser: ingress.key.clone(),
                        field: field.clone(),
                        rule: format!(
                            "the certificate of host {host} (Secret {})",
                            existing.secret
                        ),
                    }),
                    None => {
                        if !certificate.covers(host) {
                            diagnostics.push(Diagnostic::CertificateMismatch {
                                ingress: ingress.key.clone(),
                                field: field.clone(),
                                secret: certificate.secret.clone(),
                                host: host.to_string(),
                                names: certificate.names.join(", "),
                            });
                        }
                        store.get_or_insert_with(host, || certificate.clone());
                        owners.insert(host.clone(), ingress.key.clone());
                    }
                }
            }
        }
    }
    if let Some(secret) = &config.default_certificate {
        match index
            .secret(&secret.namespace, &secret.name)
            .map(|s| &s.tls)
        {
            Some(Ok(certificate)) => {
                store.get_or_insert_with(&HostMatch::Any, || certificate.clone());
            }
            found => diagnostics.push(Diagnostic::DefaultCertificate {
                secret: secret.clone(),
                reason: match found {
                    Some(Err(e)) => e.to_string(),
                    _ => "not found".to_owned(),
                },
            }),
        }
    }
    (store, tls_hosts)
}
