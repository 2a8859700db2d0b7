//! Random Ingress rule paths and request paths: compiling and looking up never panics, the
//! normal form of a path is stable, and the compiled matcher agrees with a naive reading of
//! the Ingress v1 rules (longest match; Exact before Prefix; Exact minds a trailing slash).
#![no_main]

use ferry_model::{PathMatch, PathTrie, PathType, normalize_path, reference_lookup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, bool)>, Vec<String>)| {
    let (rules, requests) = input;
    let mut trie = PathTrie::default();
    let mut accepted: Vec<(String, PathType, usize)> = Vec::new();
    for (i, (path, exact)) in rules.into_iter().take(32).enumerate() {
        let kind = if exact {
            PathType::Exact
        } else {
            PathType::Prefix
        };
        let Ok(rule) = PathMatch::parse(&path, kind, true) else {
            continue;
        };
        // The first rule under a path wins; later duplicates are refused.
        if trie.insert(&rule, i).is_ok() {
            accepted.push((path, kind, i));
        }
    }
    let rules: Vec<(&str, PathType)> = accepted.iter().map(|(p, t, _)| (p.as_str(), *t)).collect();
    for request in requests.iter().take(32) {
        let normal = normalize_path(request);
        assert_eq!(normalize_path(&normal), normal, "normal forms are stable");
        let got = trie.lookup(&normal).copied();
        let want = reference_lookup(&rules, &normal).map(|k| accepted[k].2);
        assert_eq!(got, want, "rules {accepted:?}, path {normal:?}");
    }
});
