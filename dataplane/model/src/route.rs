//! The route table: host first, then path, then fallbacks.
//!
//! A request picks one host entry (exact name, else the wildcard for its parent domain, else
//! the rules without host), then the best path in it. When no path matches, the host's
//! fallback (the `defaultBackend` of the Ingress that defines the host) answers, else the
//! table's default (`defaultBackend` of an Ingress without rules), else nobody: 404.
//! A host entry never falls through to a less specific host's paths, as in nginx and Envoy.

use std::sync::Arc;

use crate::host::{HostMap, HostMatch};
use crate::path::{PathMatch, PathTrie};
use crate::upstream::{ObjectRef, Upstream};

/// What a matched request is sent to, and which Ingress asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub ingress: ObjectRef,
    pub host: HostMatch,
    /// The rule's path; `None` for a `defaultBackend`.
    pub path: Option<PathMatch>,
    pub upstream: Arc<Upstream>,
    pub https: HttpsPolicy,
}

/// How a route treats plain HTTP and what it tells HTTPS clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpsPolicy {
    /// Answer plain-HTTP requests with a 308 to the same URL over HTTPS.
    pub redirect: bool,
    /// `Strict-Transport-Security` value added to HTTPS responses.
    pub hsts: Option<Arc<str>>,
}

/// The rules of one host entry.
#[derive(Debug, Clone, Default)]
pub struct HostRoutes {
    paths: PathTrie<Arc<Route>>,
    fallback: Option<Arc<Route>>,
}

/// Host and path rules compiled for lookup.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    hosts: HostMap<HostRoutes>,
    default: Option<Arc<Route>>,
    /// Every route, in insertion order, for listing.
    all: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn builder() -> RouteTableBuilder {
        RouteTableBuilder::default()
    }

    /// The route for a request, from its Host header (or `:authority`) and its path without
    /// query, as received (it is matched in its [`normalize_path`] form). `None` means 404.
    pub fn lookup(&self, authority: &str, path: &str) -> Option<&Arc<Route>> {
        let path = crate::normalize_path(path);
        self.hosts
            .lookup(authority)
            .and_then(|e| e.paths.lookup(&path).or(e.fallback.as_ref()))
            .or(self.default.as_ref())
    }

    /// Every route: path rules, host fallbacks and the default, in the order they were added.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.all
    }

    /// Number of distinct host entries (exact, wildcard and the any-host entry).
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }
}

/// A route that lost to one already in the table for the same host and path (or fallback).
#[derive(Debug, Clone)]
pub struct DuplicateRoute {
    pub existing: Arc<Route>,
    pub rejected: Arc<Route>,
}

/// Collects routes into a [`RouteTable`]. The first route added for a host and path wins, so
/// the caller decides precedence by the order in which it adds routes.
#[derive(Debug, Default)]
pub struct RouteTableBuilder {
    table: RouteTable,
}

impl RouteTableBuilder {
    fn entry(&mut self, host: &HostMatch) -> &mut HostRoutes {
        self.table
            .hosts
            .get_or_insert_with(host, HostRoutes::default)
    }

    /// Adds a route for its host and path (a route without path is the host's fallback).
    pub fn add(&mut self, route: Arc<Route>) -> Result<(), DuplicateRoute> {
        let entry = self.entry(&route.host);
        let result = match &route.path {
            Some(path) => {
                entry
                    .paths
                    .insert(path, route.clone())
                    .map_err(|(rejected, existing)| DuplicateRoute {
                        existing: existing.clone(),
                        rejected,
                    })
            }
            None => match &entry.fallback {
                Some(existing) => Err(DuplicateRoute {
                    existing: existing.clone(),
                    rejected: route.clone(),
                }),
                None => {
                    entry.fallback = Some(route.clone());
                    Ok(())
                }
            },
        };
        if result.is_ok() {
            self.table.all.push(route);
        }
        result
    }

    /// Sets the table's default route: requests no host entry and no fallback answers.
    pub fn set_default(&mut self, route: Arc<Route>) -> Result<(), DuplicateRoute> {
        if let Some(existing) = &self.table.default {
            return Err(DuplicateRoute {
                existing: existing.clone(),
                rejected: route,
            });
        }
        self.table.default = Some(route.clone());
        self.table.all.push(route);
        Ok(())
    }

    /// Adds a host entry without rules, if it has none yet. A host that only appears in a TLS
    /// section or whose rules were all rejected still owns its name: it must not fall through
    /// to the any-host rules.
    pub fn reserve_host(&mut self, host: &HostMatch) {
        self.entry(host);
    }

    pub fn build(self) -> RouteTable {
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathType;
    use crate::upstream::{LoadBalance, UpstreamTarget};

    fn upstream(name: &str) -> Arc<Upstream> {
        Arc::new(Upstream {
            index: 0,
            name: name.into(),
            service: ObjectRef::new("default", name),
            load_balance: LoadBalance::RoundRobin,
            target: UpstreamTarget::Endpoints(Arc::new([])),
        })
    }

    fn route(host: Option<&str>, path: Option<(&str, PathType)>, to: &str) -> Arc<Route> {
        Arc::new(Route {
            ingress: ObjectRef::new("default", "ing"),
            host: HostMatch::parse(host).unwrap(),
            path: path.map(|(p, t)| PathMatch::parse(p, t, true).unwrap()),
            upstream: upstream(to),
            https: HttpsPolicy::default(),
        })
    }

    fn table(routes: Vec<Arc<Route>>, default: Option<&str>) -> RouteTable {
        let mut b = RouteTable::builder();
        for r in routes {
            b.add(r).unwrap();
        }
        if let Some(d) = default {
            b.set_default(route(None, None, d)).unwrap();
        }
        b.build()
    }

    fn to<'a>(t: &'a RouteTable, host: &str, path: &str) -> Option<&'a str> {
        t.lookup(host, path).map(|r| &*r.upstream.name)
    }

    use PathType::Prefix;

    #[test]
    fn hosts_exact_wildcard_and_any() {
        let t = table(
            vec![
                route(Some("foo.bar.com"), Some(("/", Prefix)), "exact"),
                route(Some("*.bar.com"), Some(("/", Prefix)), "wild"),
                route(None, Some(("/", Prefix)), "any"),
            ],
            None,
        );
        assert_eq!(to(&t, "foo.bar.com", "/"), Some("exact"));
        assert_eq!(to(&t, "FOO.Bar.com:8443", "/"), Some("exact"));
        assert_eq!(to(&t, "baz.bar.com", "/"), Some("wild"));
        // One label only: deeper names and the bare domain are not covered by the wildcard.
        assert_eq!(to(&t, "a.baz.bar.com", "/"), Some("any"));
        assert_eq!(to(&t, "bar.com", "/"), Some("any"));
        assert_eq!(to(&t, ".bar.com", "/"), Some("any"));
        assert_eq!(to(&t, "other.com", "/"), Some("any"));
        assert_eq!(to(&t, "", "/"), Some("any"));
    }

    #[test]
    fn a_host_does_not_fall_through_to_less_specific_hosts() {
        let t = table(
            vec![
                route(Some("foo.bar.com"), Some(("/a", Prefix)), "exact"),
                route(Some("*.bar.com"), Some(("/b", Prefix)), "wild"),
                route(None, Some(("/c", Prefix)), "any"),
            ],
            Some("default"),
        );
        assert_eq!(to(&t, "foo.bar.com", "/b"), Some("default"));
        assert_eq!(to(&t, "foo.bar.com", "/c"), Some("default"));
        assert_eq!(to(&t, "x.bar.com", "/c"), Some("default"));
        assert_eq!(to(&t, "x.bar.com", "/b"), Some("wild"));
    }

    #[test]
    fn fallbacks_then_default_then_nothing() {
        let t = table(
            vec![
                route(Some("a.com"), Some(("/x", Prefix)), "a-x"),
                route(Some("a.com"), None, "a-fallback"),
                route(Some("b.com"), Some(("/x", Prefix)), "b-x"),
            ],
            None,
        );
        assert_eq!(to(&t, "a.com", "/y"), Some("a-fallback"));
        assert_eq!(to(&t, "b.com", "/y"), None);
        assert_eq!(to(&t, "c.com", "/x"), None);
        let with_default = table(
            vec![route(Some("b.com"), Some(("/x", Prefix)), "b-x")],
            Some("d"),
        );
        assert_eq!(to(&with_default, "b.com", "/y"), Some("d"));
        assert_eq!(to(&with_default, "c.com", "/"), Some("d"));
    }

    #[test]
    fn duplicates_report_the_winner() {
        let mut b = RouteTable::builder();
        b.add(route(Some("a.com"), Some(("/x", Prefix)), "first"))
            .unwrap();
        let dup = b
            .add(route(Some("A.com"), Some(("/x/", Prefix)), "second"))
            .unwrap_err();
        assert_eq!(&*dup.existing.upstream.name, "first");
        assert_eq!(&*dup.rejected.upstream.name, "second");
        b.add(route(Some("a.com"), None, "fb1")).unwrap();
        assert!(b.add(route(Some("a.com"), None, "fb2")).is_err());
        b.set_default(route(None, None, "d1")).unwrap();
        assert!(b.set_default(route(None, None, "d2")).is_err());
        let t = b.build();
        assert_eq!(t.routes().len(), 3);
        assert_eq!(to(&t, "a.com", "/x/y"), Some("first"));
    }

    #[test]
    fn reserved_host_answers_with_default_only() {
        let mut b = RouteTable::builder();
        b.add(route(None, Some(("/", Prefix)), "any")).unwrap();
        b.reserve_host(&HostMatch::parse(Some("tls-only.com")).unwrap());
        let t = b.build();
        assert_eq!(to(&t, "tls-only.com", "/"), None);
        assert_eq!(to(&t, "other.com", "/"), Some("any"));
        assert_eq!(t.host_count(), 2);
    }
}
