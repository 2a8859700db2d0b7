//! Random Ingress rule paths and request paths: compiling and looking up never panics, the
//! normal form of a path is stable, and the compiled matcher agrees with a naive reading of
//! the Ingress v1 rules (longest match; Exact before Prefix; Exact minds a trailing slash).
#![no_main]

use ferry_model::{PathMatch, PathTrie, PathType, normalize_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, bool)>, Vec<String>)| {
    let (rules, requests) = input;
    let mut trie = PathTrie::default();
    let mut accepted: Vec<(String, PathType, usize)> = Vec::new();
    for (i, (path, exact)) in rules.into_iter().take(32).enumerate() {
        let kind = if exact { PathType::Exact } else { PathType::Prefix };
        let Ok(rule) = PathMatch::parse(&path, kind, true) else {
            continue;
        };
        // The first rule under a path wins; later duplicates are refused.
        if trie.insert(&rule, i).is_ok() {
            accepted.push((path, kind, i));
        }
    }
    for request in requests.iter().take(32) {
        let normal = normalize_path(request);
        assert_eq!(normalize_path(&normal), normal, "normal forms are stable");
        let got = trie.lookup(&normal).copied();
        assert_eq!(got, reference(&accepted, &normal), "rules {accepted:?}, path {normal:?}");
    }
});

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn reference(rules: &[(String, PathType, usize)], request: &str) -> Option<usize> {
    let req = segments(request);
    let req_trailing = !req.is_empty() && request.ends_with('/');
    rules
        .iter()
        .filter(|(path, kind, _)| {
            let rule = segments(path);
            match kind {
                PathType::Exact => {
                    let rule_trailing = !rule.is_empty() && path.ends_with('/');
                    rule == req && rule_trailing == req_trailing
                }
                _ => req.len() >= rule.len() && req[..rule.len()] == rule[..],
            }
        })
        .max_by_key(|(path, kind, _)| (segments(path).len(), *kind == PathType::Exact))
        .map(|(_, _, i)| *i)
}
