//! Host matching as Ingress v1 defines it: exact names (case-insensitive), single-label
//! wildcards (`*.foo.com` covers `bar.foo.com`, not `foo.com` nor `a.bar.foo.com`), and rules
//! without a host that match any host.

use std::collections::HashMap;
use std::fmt;

/// Longest DNS name (RFC 1035), and so the longest Host we normalise for a lookup.
pub(crate) const MAX_HOST_LEN: usize = 253;

/// Which request hosts a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostMatch {
    /// One name, lowercase, without a trailing dot.
    Exact(Box<str>),
    /// `*.suffix`: any single label followed by `.suffix`; holds the lowercase suffix.
    Wildcard(Box<str>),
    /// A rule without `host`: every request whose host has no more specific rule.
    Any,
}

/// Why an Ingress `host` is not a host we can match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host is longer than {MAX_HOST_LEN} characters")]
    TooLong,
    #[error("host {0:?} has an empty label")]
    EmptyLabel(String),
    #[error("host {0:?}: a wildcard must be the whole first label, as in \"*.example.com\"")]
    MisplacedWildcard(String),
    #[error("host {0:?} has a character outside a DNS name (letters, digits, '-' and '.' only)")]
    InvalidCharacter(String),
    #[error("host {0:?} is an IP address; Ingress hosts must be DNS names")]
    IpAddress(String),
    #[error("host {0:?}: a label may not start or end with '-'")]
    HyphenAtLabelEdge(String),
}

impl HostMatch {
    /// Parses an Ingress rule's `host`; `None` or `""` is [`HostMatch::Any`].
    ///
    /// Accepts what the API server accepts (DNS-1123 subdomains, optionally prefixed by `*.`),
    /// and also uppercase letters, which it lowercases: names are case-insensitive.
    pub fn parse(host: Option<&str>) -> Result<Self, HostError> {
        let host = match host {
            None | Some("") => return Ok(HostMatch::Any),
            Some(h) => h,
        };
        if host.len() > MAX_HOST_LEN {
            return Err(HostError::TooLong);
        }
        let lower = host.to_ascii_lowercase();
        if lower.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostError::IpAddress(host.to_owned()));
        }
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        for label in name.split('.') {
            if label.is_empty() {
                return Err(HostError::EmptyLabel(host.to_owned()));
            }
            if label.contains('*') {
                return Err(HostError::MisplacedWildcard(host.to_owned()));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(HostError::InvalidCharacter(host.to_owned()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostError::HyphenAtLabelEdge(host.to_owned()));
            }
        }
        Ok(if wildcard {
            HostMatch::Wildcard(name.into())
        } else {
            HostMatch::Exact(name.into())
        })
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Wildcard(suffix) => write!(f, "*.{suffix}"),
            HostMatch::Any => f.write_str("*"),
        }
    }
}

/// Reduces a request's Host header or `:authority` to the name rules are matched against:
/// without port, without a trailing dot, lowercase. Writes into `buf` so the request path does
/// not allocate; `None` when there is no usable name (empty, or longer than a DNS name).
pub fn normalize_authority<'a>(
    authority: &str,
    buf: &'a mut [u8; MAX_HOST_LEN],
) -> Option<&'a str> {
    let host = if authority.starts_with('[') {
        // An IPv6 literal, with or without port: never an Ingress host, but keep it whole.
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid, so this only fails on input that was not str.
    std::str::from_utf8(out).ok()
}

/// Values by host, found the Ingress way: the exact name, else the wildcard of its parent
/// domain, else the value for any host.
#[derive(Debug, Clone)]
pub struct HostMap<T> {
    exact: HashMap<Box<str>, T>,
    wildcard: HashMap<Box<str>, T>,
    any: Option<T>,
}

impl<T> Default for HostMap<T> {
    fn default() -> Self {
        HostMap {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: None,
        }
    }
}

impl<T> HostMap<T> {
    /// The value stored under exactly this host pattern.
    pub fn get(&self, host: &HostMatch) -> Option<&T> {
        match host {
            HostMatch::Exact(h) => self.exact.get(h),
            HostMatch::Wildcard(s) => self.wildcard.get(s),
            HostMatch::Any => self.any.as_ref(),
        }
    }

    pub fn get_or_insert_with(&mut self, host: &HostMatch, value: impl FnOnce() -> T) -> &mut T {
        match host {
            HostMatch::Exact(h) => self.exact.entry(h.clone()).or_insert_with(value),
            HostMatch::Wildcard(s) => self.wildcard.entry(s.clone()).or_insert_with(value),
            HostMatch::Any => self.any.get_or_insert_with(value),
        }
    }

    /// The value for a request's Host header, `:authority` or SNI name (any case, with or
    /// without port or trailing dot).
    pub fn lookup(&self, authority: &str) -> Option<&T> {
        let mut buf = [0; MAX_HOST_LEN];
        normalize_authority(authority, &mut buf)
            .and_then(|host| {
                self.exact.get(host).or_else(|| {
                    let (label, parent) = host.split_once('.')?;
                    if label.is_empty() {
                        return None;
                    }
                    self.wildcard.get(parent)
                })
            })
            .or(self.any.as_ref())
    }

    /// Number of host patterns with a value.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len() + usize::from(self.any.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every host pattern and its value.
    pub fn iter(&self) -> impl Iterator<Item = (HostMatch, &T)> {
        let exact = self
            .exact
            .iter()
            .map(|(h, v)| (HostMatch::Exact(h.clone()), v));
        let wildcard = self
            .wildcard
            .iter()
            .map(|(s, v)| (HostMatch::Wildcard(s.clone()), v));
        let any = self.any.iter().map(|v| (HostMatch::Any, v));
        exact.chain(wildcard).chain(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(authority: &str) -> Option<String> {
        let mut buf = [0; MAX_HOST_LEN];
        normalize_authority(authority, &mut buf).map(str::to_owned)
    }

    #[test]
    fn authority_loses_port_case_and_trailing_dot() {
        assert_eq!(
            norm("Foo.Example.COM:8080").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(norm("foo.example.com.").as_deref(), Some("foo.example.com"));
        assert_eq!(
            norm("foo.example.com.:80").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(norm("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(norm("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(norm("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(norm(""), None);
        assert_eq!(norm(":80"), None);
        assert_eq!(norm(&"a".repeat(300)), None);
    }

    #[test]
    fn parses_ingress_hosts() {
        assert_eq!(HostMatch::parse(None), Ok(HostMatch::Any));
        assert_eq!(HostMatch::parse(Some("")), Ok(HostMatch::Any));
        assert_eq!(
            HostMatch::parse(Some("Foo.Bar.com")),
            Ok(HostMatch::Exact("foo.bar.com".into()))
        );
        assert_eq!(
            HostMatch::parse(Some("*.foo.com")),
            Ok(HostMatch::Wildcard("foo.com".into()))
        );
        for bad in [
            "*.*.foo.com",
            "foo.*.com",
            "a*.foo.com",
            "*foo.com",
            "*",
            "foo..com",
            ".foo.com",
            "foo_bar.com",
            "-foo.com",
            "10.0.0.1",
            "::1",
            "foo.com:80",
        ] {
            assert!(
                HostMatch::parse(Some(bad)).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
