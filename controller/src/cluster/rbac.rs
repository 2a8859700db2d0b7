//! Every API call ferry makes, as RBAC rules: the one list the Helm chart's ClusterRole and
//! Role are made from (`ferry rbac` prints them) and the test API server enforces, so a call
//! missing here fails the tests instead of a user's cluster.

use std::fmt::Write;

/// One RBAC rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub api_group: &'static str,
    /// Resources, with `/subresource` where one is used.
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// Cluster-wide (ClusterRole): what the watches read, Ingress status, Events.
pub const CLUSTER_RULES: &[Rule] = &[
    Rule {
        api_group: "networking.k8s.io",
        resources: &["ingresses", "ingressclasses"],
        verbs: &["list", "watch"],
    },
    Rule {
        api_group: "networking.k8s.io",
        resources: &["ingresses/status"],
        verbs: &["patch"],
    },
    Rule {
        api_group: "",
        // Secrets: only type kubernetes.io/tls is listed (field selector), but RBAC cannot
        // say so.
        resources: &["services", "endpoints", "secrets", "nodes"],
        verbs: &["list", "watch"],
    },
    Rule {
        api_group: "discovery.k8s.io",
        resources: &["endpointslices"],
        verbs: &["list", "watch"],
    },
    Rule {
        api_group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
    },
];

/// In the leader-election namespace only (Role): the Lease.
pub const ELECTION_RULES: &[Rule] = &[Rule {
    api_group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
}];

/// Whether `rules` allow `verb` on `resource` (with subresource) of `api_group`.
pub fn allows(rules: &[Rule], api_group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_group == api_group && r.resources.contains(&resource) && r.verbs.contains(&verb)
    })
}

/// The ClusterRole and the election Role as YAML, under `name`.
pub fn manifests(name: &str, election_namespace: &str) -> String {
    let rules = |out: &mut String, rules: &[Rule]| {
        out.push_str("rules:\n");
        for r in rules {
            let list = |items: &[&str]| {
                items
                    .iter()
                    .map(|i| format!("\"{i}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(out, "- apiGroups: [\"{}\"]", r.api_group);
            let _ = writeln!(out, "  resources: [{}]", list(r.resources));
            let _ = writeln!(out, "  verbs: [{}]", list(r.verbs));
        }
    };
    let mut out = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\n"
    );
    rules(&mut out, CLUSTER_RULES);
    let _ = write!(
        out,
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}-leader-election\n  namespace: {election_namespace}\n"
    );
    rules(&mut out, ELECTION_RULES);
    out
}
