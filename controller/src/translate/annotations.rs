//! ferry's per-Ingress annotations (`ferry.dev/…`). A value that does not parse is reported and
//! the default applies, so a typo never takes routes down; an unknown `ferry.dev/` annotation is
//! reported too (it is most likely a misspelling).

use std::sync::Arc;

use ferry_model::{HttpsPolicy, LoadBalance};

use super::Diagnostic;
use crate::config::ControllerConfig;
use crate::index::IngressEntry;

/// Balancing policy of the Ingress's backends: `round-robin` or `ewma`.
pub const LOAD_BALANCE: &str = "ferry.dev/load-balance";
/// `"false"` keeps plain HTTP for this Ingress's paths on hosts that have TLS.
pub const SSL_REDIRECT: &str = "ferry.dev/ssl-redirect";
/// `"true"` redirects this Ingress's paths to HTTPS even without a `tls` section.
pub const FORCE_SSL_REDIRECT: &str = "ferry.dev/force-ssl-redirect";
/// `"true"` adds `Strict-Transport-Security` to HTTPS responses of this Ingress's paths.
pub const HSTS: &str = "ferry.dev/hsts";
/// HSTS `max-age` in seconds (default one year).
pub const HSTS_MAX_AGE: &str = "ferry.dev/hsts-max-age";
/// `"true"` adds `includeSubDomains` to HSTS.
pub const HSTS_INCLUDE_SUBDOMAINS: &str = "ferry.dev/hsts-include-subdomains";
/// `"true"` adds `preload` to HSTS.
pub const HSTS_PRELOAD: &str = "ferry.dev/hsts-preload";

const KNOWN: [&str; 7] = [
    LOAD_BALANCE,
    SSL_REDIRECT,
    FORCE_SSL_REDIRECT,
    HSTS,
    HSTS_MAX_AGE,
    HSTS_INCLUDE_SUBDOMAINS,
    HSTS_PRELOAD,
];

const ONE_YEAR: u64 = 31_536_000;

/// What an Ingress's annotations ask for.
#[derive(Debug)]
pub(super) struct Annotations {
    pub(super) load_balance: LoadBalance,
    /// Whether paths of TLS hosts redirect plain HTTP (ingress-nginx's default: yes).
    pub(super) ssl_redirect: bool,
    pub(super) force_ssl_redirect: bool,
    pub(super) hsts: Option<Arc<str>>,
}

impl Annotations {
    /// The HTTPS policy of a route of this Ingress; `tls_host` says whether its host has TLS.
    pub(super) fn https(&self, tls_host: bool) -> HttpsPolicy {
        HttpsPolicy {
            redirect: self.force_ssl_redirect || (tls_host && self.ssl_redirect),
            hsts: self.hsts.clone(),
        }
    }
}

pub(super) fn read(
    ingress: &IngressEntry,
    config: &ControllerConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> Annotations {
    let mut r = Reader {
        ingress,
        diagnostics,
    };
    for name in ingress.annotations.keys() {
        if !KNOWN.contains(&name.as_str()) {
            r.diagnostics.push(Diagnostic::UnknownAnnotation {
                ingress: ingress.key.clone(),
                annotation: name.clone(),
                known: KNOWN.join(", "),
            });
        }
    }
    let load_balance = r.parse(
        LOAD_BALANCE,
        config.default_load_balance,
        LoadBalance::from_name,
        &LoadBalance::NAMES.join(", "),
    );
    let ssl_redirect = r.flag(SSL_REDIRECT, true);
    let force_ssl_redirect = r.flag(FORCE_SSL_REDIRECT, false);
    let hsts = r.flag(HSTS, false).then(|| {
        let max_age = r.parse(
            HSTS_MAX_AGE,
            ONE_YEAR,
            |v| v.parse().ok(),
            "a number of seconds",
        );
        let mut value = format!("max-age={max_age}");
        if r.flag(HSTS_INCLUDE_SUBDOMAINS, false) {
            value.push_str("; includeSubDomains");
        }
        if r.flag(HSTS_PRELOAD, false) {
            value.push_str("; preload");
        }
        value.into()
    });
    Annotations {
        load_balance,
        ssl_redirect,
        force_ssl_redirect,
        hsts,
    }
}

struct Reader<'a> {
    ingress: &'a IngressEntry,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Reader<'_> {
    fn parse<T: std::fmt::Display>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> T {
        let Some(value) = self.ingress.annotations.get(name) else {
            return default;
        };
        parse(value.trim()).unwrap_or_else(|| {
            self.diagnostics.push(Diagnostic::InvalidAnnotation {
                ingress: self.ingress.key.clone(),
                annotation: name,
                value: value.clone(),
                expected: expected.to_owned(),
                fallback: default.to_string(),
            });
            default
        })
    }

    fn flag(&mut self, name: &'static str, default: bool) -> bool {
        let parse = |v: &str| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        self.parse(name, default, parse, "\"true\" or \"false\"")
    }
}
