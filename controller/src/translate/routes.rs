//! One Ingress's rules into the route table. Called in precedence order (oldest first), so the
//! first route added for a host and path is the one that wins a conflict.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_model::{DuplicateRoute, HostMatch, Route, RouteTableBuilder};

use super::Diagnostic;
use super::annotations;
use super::backend::Upstreams;
use super::tls::TlsHosts;
use crate::config::ControllerConfig;
use crate::index::IngressEntry;

pub(super) fn add_ingress(
    ingress: &IngressEntry,
    table: &mut RouteTableBuilder,
    upstreams: &mut Upstreams<'_>,
    tls_hosts: &TlsHosts,
    config: &ControllerConfig,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let annotations = annotations::read(ingress, config, diagnostics);
    let load_balance = annotations.load_balance;
    let route = |host: &HostMatch, path, upstream| {
        Arc::new(Route {
            ingress: ingress.key.clone(),
            host: host.clone(),
            path,
            upstream,
            https: annotations.https(tls_hosts.has_tls(host)),
        })
    };
    let conflict = |dup: DuplicateRoute, field: String| {
        let rule = match &dup.rejected.path {
            Some(path) => format!(
                "host {} path {} {path}",
                dup.rejected.host,
                path.path_type()
            ),
            None if field == "spec.defaultBackend" && dup.rejected.host == HostMatch::Any => {
                "the default backend".to_owned()
            }
            None => format!("the default backend of host {}", dup.rejected.host),
        };
        Diagnostic::Conflict {
            winner: dup.existing.ingress.clone(),
            loser: dup.rejected.ingress.clone(),
            field,
            rule,
        }
    };

    for (i, rule) in ingress.rules.iter().enumerate() {
        let Some(paths) = &rule.paths else {
            table.reserve_host(&rule.host);
            continue;
        };
        for (j, p) in paths.iter().enumerate() {
            let Some(upstream) = upstreams.resolve(ingress, &p.backend, load_balance, diagnostics)
            else {
                continue;
            };
            if let Err(dup) = table.add(route(&rule.host, Some(p.path.clone()), upstream)) {
                diagnostics.push(conflict(dup, format!("spec.rules[{i}].http.paths[{j}]")));
            }
        }
    }

    let Some(backend) = &ingress.default_backend else {
        return;
    };
    let Some(upstream) = upstreams.resolve(ingress, backend, load_balance, diagnostics) else {
        return;
    };
    if ingress.rules.is_empty() {
        // An Ingress with only a default backend catches everything nothing else matches.
        if let Err(dup) = table.set_default(route(&HostMatch::Any, None, upstream)) {
            diagnostics.push(conflict(dup, "spec.defaultBackend".to_owned()));
        }
        return;
    }
    // Otherwise it answers what this Ingress's hosts do not match by path.
    let hosts: BTreeSet<&HostMatch> = ingress.rules.iter().map(|r| &r.host).collect();
    for host in hosts {
        if let Err(dup) = table.add(route(host, None, upstream.clone())) {
            diagnostics.push(conflict(dup, "spec.defaultBackend".to_owned()));
        }
    }
}
