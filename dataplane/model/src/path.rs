//! Path matching as Ingress v1 defines it, compiled into a trie of path segments so a lookup
//! costs one hash probe per segment of the request path, whatever the number of rules.
//!
//! - `Prefix` matches element-wise on `/`-separated segments: `/aaa/bbb` matches `/aaa/bbb`,
//!   `/aaa/bbb/` and `/aaa/bbb/ccc`, not `/aaa/bbbxyz`; a trailing slash on the rule is ignored.
//! - `Exact` matches the whole path; `/foo` and `/foo/` are different paths.
//! - The longest matching rule wins; on equal paths `Exact` wins over `Prefix`.
//!
//! Requests are matched on [`normalize_path`] of their path (unreserved escapes decoded, runs
//! of `/` merged, dot segments resolved); the request still reaches the backend unmodified.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// How a rule's path is compared with the request path (`ImplementationSpecific` is mapped to
/// `Prefix` by the controller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathType {
    Exact,
    Prefix,
}

impl fmt::Display for PathType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
        })
    }
}

/// A validated, normalised rule path: the key under which it is stored in a [`PathTrie`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathMatch {
    path_type: PathType,
    segments: Box<[Box<str>]>,
    /// Only for `Exact`: the rule ends in `/` (and is not just `/`).
    trailing_slash: bool,
}

/// Why a rule's path cannot be matched; mirrors the API server's validation of Ingress paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} must be an absolute path (start with '/')")]
    NotAbsolute(String),
    #[error("path {path:?} must not contain {sequence:?}")]
    InvalidSequence {
        path: String,
        sequence: &'static str,
    },
    #[error("path {path:?} must not end with {suffix:?}")]
    InvalidSuffix { path: String, suffix: &'static str },
}

/// Sequences the API server rejects in `Exact` and `Prefix` paths.
const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

impl PathMatch {
    /// Validates and normalises a rule path. `strict` applies the API server's rules for
    /// `Exact` and `Prefix`; `ImplementationSpecific` paths pass `strict = false` and only need
    /// to be absolute.
    pub fn parse(path: &str, path_type: PathType, strict: bool) -> Result<Self, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute(path.to_owned()));
        }
        if strict {
            if let Some(sequence) = INVALID_SEQUENCES.into_iter().find(|s| path.contains(s)) {
                return Err(PathError::InvalidSequence {
                    path: path.to_owned(),
                    sequence,
                });
            }
            if let Some(suffix) = INVALID_SUFFIXES.into_iter().find(|s| path.ends_with(s)) {
                return Err(PathError::InvalidSuffix {
                    path: path.to_owned(),
                    suffix,
                });
            }
        }
        let segments: Box<[Box<str>]> = split(path).map(Into::into).collect();
        let trailing_slash =
            path_type == PathType::Exact && !segments.is_empty() && path.ends_with('/');
        Ok(PathMatch {
            path_type,
            segments,
            trailing_slash,
        })
    }

    pub fn path_type(&self) -> PathType {
        self.path_type
    }
}

impl fmt::Display for PathMatch {
    /// The normalised path, as it is matched.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            write!(f, "/{segment}")?;
        }
        if self.trailing_slash {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// The segments of a path, with empty ones (from `//` or a trailing `/`) left out.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The Ingress v1 path rules read literally, rule by rule, with no trie: the index of the rule
/// `request` matches (longest path, then Exact over Prefix; Exact minds a trailing slash).
/// What [`PathTrie`] must agree with, in the property tests here and the `routes` fuzz target.
#[cfg(any(test, feature = "reference"))]
#[cfg_attr(not(feature = "reference"), allow(unreachable_pub))]
#[doc(hidden)]
pub fn reference_lookup(rules: &[(&str, PathType)], request: &str) -> Option<usize> {
    let req: Vec<&str> = split(request).collect();
    let req_trailing = !req.is_empty() && request.ends_with('/');
    rules
        .iter()
        .enumerate()
        .filter(|(_, (path, path_type))| {
            let rule: Vec<&str> = split(path).collect();
            match path_type {
                PathType::Prefix => req.len() >= rule.len() && req[..rule.len()] == rule[..],
                PathType::Exact => {
                    let rule_trailing = !rule.is_empty() && path.ends_with('/');
                    rule == req && rule_trailing == req_trailing
                }
            }
        })
        .max_by_key(|(_, (path, path_type))| (split(path).count(), *path_type == PathType::Exact))
        .map(|(i, _)| i)
}

/// Rule paths of one host, compiled for lookup.
#[derive(Debug, Clone)]
pub struct PathTrie<T> {
    root: Node<T>,
}

#[derive(Debug, Clone)]
struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    prefix: Option<T>,
    exact: Option<T>,
    exact_trailing_slash: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            prefix: None,
            exact: None,
            exact_trailing_slash: None,
        }
    }
}

impl<T> Default for PathTrie<T> {
    fn default() -> Self {
        PathTrie {
            root: Node::default(),
        }
    }
}

impl<T> PathTrie<T> {
    /// Adds a rule. The first value stored under a path wins: on a duplicate the new value is
    /// handed back with the one already there, so the caller can report the conflict.
    pub fn insert(&mut self, path: &PathMatch, value: T) -> Result<(), (T, &T)> {
        let mut node = &mut self.root;
        for segment in &path.segments {
            node = node.children.entry(segment.clone()).or_default();
        }
        let slot = match (path.path_type, path.trailing_slash) {
            (PathType::Prefix, _) => &mut node.prefix,
            (PathType::Exact, false) => &mut node.exact,
            (PathType::Exact, true) => &mut node.exact_trailing_slash,
        };
        match slot {
            Some(existing) => Err((value, existing)),
            None => {
                *slot = Some(value);
                Ok(())
            }
        }
    }

    /// The value of the best rule for a request path (without query): the longest match,
    /// `Exact` before `Prefix` on equal length.
    pub fn lookup(&self, path: &str) -> Option<&T> {
        let mut node = &self.root;
        let mut best = node.prefix.as_ref();
        let mut depth = 0;
        for segment in split(path) {
            match node.children.get(segment) {
                Some(child) => {
                    node = child;
                    depth += 1;
                    if node.prefix.is_some() {
                        best = node.prefix.as_ref();
                    }
                }
                // No deeper rule can match, and with segments left no Exact rule either.
                None => return best,
            }
        }
        // Every segment matched: an Exact rule on this node is the whole path, the longest
        // possible match.
        let trailing_slash = depth > 0 && path.ends_with('/');
        let exact = if trailing_slash {
            node.exact_trailing_slash.as_ref()
        } else {
            node.exact.as_ref()
        };
        exact.or(best)
    }

    /// Whether no rule has been added.
    pub fn is_empty(&self) -> bool {
        let root = &self.root;
        root.children.is_empty()
            && root.prefix.is_none()
            && root.exact.is_none()
            && root.exact_trailing_slash.is_none()
    }
}

/// The form of a request path that routing matches on; the request itself is forwarded as
/// received. Applied, in order:
/// - percent-encoded unreserved characters are decoded (`/%61pi` is `/api`; RFC 3986 §6.2.2.2
///   calls them equivalent), other escapes are kept as they are: `%2F` stays a byte of its
///   segment, never a separator; decoding happens once (a stray `%` counts as `%25`);
/// - runs of slashes become one (`//api` is `/api`), as nginx's `merge_slashes`;
/// - `.` and `..` segments are resolved (RFC 3986 §5.2.4); `..` never climbs above `/`.
///
/// So a path cannot reach a rule by dressing up as another one (`/public/../admin` matches the
/// rules of `/admin`), and the backend, which resolves the path the same way, serves what the
/// rule chose.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    // Most paths have nothing to normalise: no escape, no empty segment, no segment starting
    // with a dot (`/.well-known` takes the slow path and comes out unchanged).
    let plain = !bytes.contains(&b'%') && !path.contains("//") && !path.contains("/.");
    if plain {
        return Cow::Borrowed(path);
    }
    // Decode unreserved escapes.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
            && (byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        {
            decoded.push(byte as char);
            i += 3;
            continue;
        }
        // A stray `%` is written as the escape it stands for, so decoding never makes a new
        // escape (`/%%330` would otherwise decode twice into `/0`).
        if bytes[i] == b'%'
            && !path
                .get(i + 1..i + 3)
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            decoded.push_str("%25");
            i += 1;
            continue;
        }
        let ch = path[i..].chars().next().expect("in bounds");
        decoded.push(ch);
        i += ch.len_utf8();
    }
    // Merge slashes and resolve dot segments.
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "."
        || decoded == "..";
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trie(rules: &[(&str, PathType)]) -> PathTrie<String> {
        let mut trie = PathTrie::default();
        for (path, path_type) in rules {
            let key = PathMatch::parse(path, *path_type, true).unwrap();
            trie.insert(&key, format!("{path_type} {path}")).unwrap();
        }
        trie
    }

    use PathType::{Exact, Prefix};

    /// Every row of the "Examples" table of path matching on
    /// https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
    /// (kind, rule paths, request path, the rule that must match or None).
    #[test]
    fn kubernetes_ingress_path_matching_examples() {
        #[rustfmt::skip]
        type Row<'a> = (&'a [(&'a str, PathType)], &'a str, Option<&'a str>);
        let table: &[Row] = &[
            (&[("/", Prefix)], "/anything/at/all", Some("Prefix /")),
            (&[("/", Prefix)], "/", Some("Prefix /")),
            (&[("/foo", Exact)], "/foo", Some("Exact /foo")),
            (&[("/foo", Exact)], "/bar", None),
            (&[("/foo", Exact)], "/foo/", None),
            (&[("/foo/", Exact)], "/foo", None),
            (&[("/foo", Prefix)], "/foo", Some("Prefix /foo")),
            (&[("/foo", Prefix)], "/foo/", Some("Prefix /foo")),
            (&[("/foo/", Prefix)], "/foo", Some("Prefix /foo/")),
            (&[("/foo/", Prefix)], "/foo/", Some("Prefix /foo/")),
            (&[("/aaa/bb", Prefix)], "/aaa/bbb", None),
            (&[("/aaa/bbb", Prefix)], "/aaa/bbb", Some("Prefix /aaa/bbb")),
            (
                &[("/aaa/bbb/", Prefix)],
                "/aaa/bbb",
                Some("Prefix /aaa/bbb/"),
            ),
            (
                &[("/aaa/bbb", Prefix)],
                "/aaa/bbb/",
                Some("Prefix /aaa/bbb"),
            ),
            (
                &[("/aaa/bbb", Prefix)],
                "/aaa/bbb/ccc",
                Some("Prefix /aaa/bbb"),
            ),
            (&[("/aaa/bbb", Prefix)], "/aaa/bbbxyz", None),
            (
                &[("/", Prefix), ("/aaa", Prefix)],
                "/aaa/ccc",
                Some("Prefix /aaa"),
            ),
            (
                &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
                "/aaa/bbb",
                Some("Prefix /aaa/bbb"),
            ),
            (
                &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
                "/ccc",
                Some("Prefix /"),
            ),
            (&[("/aaa", Prefix)], "/ccc", None),
            (
                &[("/foo", Prefix), ("/foo", Exact)],
                "/foo",
                Some("Exact /foo"),
            ),
        ];
        for (rules, request, expected) in table {
            let got = trie(rules).lookup(request).cloned();
            assert_eq!(
                got.as_deref(),
                *expected,
                "rules {rules:?}, request {request}"
            );
        }
    }

    #[test]
    fn exact_beats_prefix_registered_first() {
        // Insertion order must not matter for precedence.
        let t = trie(&[("/foo", Prefix), ("/foo", Exact), ("/foo/bar", Exact)]);
        assert_eq!(t.lookup("/foo").unwrap(), "Exact /foo");
        assert_eq!(t.lookup("/foo/bar").unwrap(), "Exact /foo/bar");
        assert_eq!(t.lookup("/foo/bar/").unwrap(), "Prefix /foo");
        assert_eq!(t.lookup("/foo/baz").unwrap(), "Prefix /foo");
    }

    #[test]
    fn root_exact_and_trailing_slashes() {
        let t = trie(&[("/", Exact), ("/a/", Exact)]);
        assert_eq!(t.lookup("/").unwrap(), "Exact /");
        assert_eq!(t.lookup("/a/").unwrap(), "Exact /a/");
        assert_eq!(t.lookup("/a"), None);
        assert_eq!(t.lookup("/b"), None);
    }

    #[test]
    fn repeated_slashes_count_as_one() {
        let t = trie(&[("/aaa/bbb", Prefix), ("/x", Exact)]);
        assert_eq!(t.lookup("//aaa//bbb/ccc").unwrap(), "Prefix /aaa/bbb");
        assert_eq!(t.lookup("//x").unwrap(), "Exact /x");
    }

    #[test]
    fn duplicate_paths_keep_the_first_value() {
        let mut t = PathTrie::default();
        let a = PathMatch::parse("/foo/", Prefix, true).unwrap();
        let b = PathMatch::parse("/foo", Prefix, true).unwrap();
        t.insert(&a, 1).unwrap();
        assert_eq!(t.insert(&b, 2), Err((2, &1)));
        assert_eq!(t.lookup("/foo/x"), Some(&1));
    }

    #[test]
    fn validation_follows_the_api_server() {
        for bad in [
            "foo", "", "/a//b", "/a/./b", "/a/../b", "/a%2Fb", "/a%2fb", "/a/..", "/a/.",
        ] {
            assert!(PathMatch::parse(bad, Prefix, true).is_err(), "{bad:?}");
        }
        // ImplementationSpecific only needs an absolute path.
        assert!(PathMatch::parse("/a//b", Prefix, false).is_ok());
        assert!(PathMatch::parse("a", Prefix, false).is_err());
    }

    #[test]
    fn displays_the_normalised_path() {
        let show = |p, t| PathMatch::parse(p, t, false).unwrap().to_string();
        assert_eq!(show("/", Prefix), "/");
        assert_eq!(show("/foo/", Prefix), "/foo");
        assert_eq!(show("/foo/", Exact), "/foo/");
        assert_eq!(show("//a///b", Exact), "/a/b");
    }

    fn segment() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "aa", "ab", "c"]).prop_map(str::to_owned)
    }

    fn path() -> impl Strategy<Value = String> {
        (prop::collection::vec(segment(), 0..4), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !segs.is_empty() {
                p.push('/');
            }
            p
        })
    }

    fn path_type() -> impl Strategy<Value = PathType> {
        prop_oneof![Just(Exact), Just(Prefix)]
    }

    #[test]
    fn normalisation_for_matching() {
        for (path, normal) in [
            ("/api/v1", "/api/v1"),
            ("//api///v1", "/api/v1"),
            ("/public/../admin", "/admin"),
            ("/public/./../admin/", "/admin/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%61pi/%7Euser", "/api/~user"),
            ("/%2e%2E/admin", "/admin"),
            ("/admin%2Fsecret", "/admin%2Fsecret"),
            ("/a%2f..%2fb", "/a%2f..%2fb"),
            ("/%zz/%4", "/%25zz/%254"),
            ("/%%330", "/%2530"),
            ("/caf\u{e9}/./x", "/caf\u{e9}/x"),
            ("/", "/"),
            (
                "/.well-known/acme-challenge/t",
                "/.well-known/acme-challenge/t",
            ),
            ("*", "*"),
        ] {
            assert_eq!(normalize_path(path), normal, "{path}");
        }
        assert!(matches!(normalize_path("/plain/path/"), Cow::Borrowed(_)));
    }

    proptest! {
        /// Normal forms are fixed points, with no empty, `.` or `..` segment left.
        #[test]
        fn normal_forms_are_stable(path in "/[a-z./%0-9A-F]{0,24}") {
            let once = normalize_path(&path).into_owned();
            prop_assert_eq!(normalize_path(&once).into_owned(), once.clone());
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"));
            prop_assert!(once.split('/').all(|s| s != "." && s != ".."));
        }

        #[test]
        fn trie_agrees_with_reference(
            rules in prop::collection::vec((path(), path_type()), 0..12),
            requests in prop::collection::vec(path(), 1..12),
        ) {
            let mut trie = PathTrie::default();
            let mut kept = Vec::new();
            for (p, t) in &rules {
                let key = PathMatch::parse(p, *t, true).unwrap();
                if trie.insert(&key, kept.len()).is_ok() {
                    kept.push((p.clone(), *t));
                }
            }
            let rules: Vec<(&str, PathType)> = kept.iter().map(|(p, t)| (p.as_str(), *t)).collect();
            for request in &requests {
                let got = trie.lookup(request).copied();
                let want = reference_lookup(&rules, request);
                // Equal-length, equal-type rules are duplicates and were not kept, so the
                // reference has a unique answer.
                prop_assert_eq!(got, want, "request {}", request);
            }
        }
    }
}
