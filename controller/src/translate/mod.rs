//! Translation: the index in, a snapshot and the problems found out. Pure: no I/O, no clock,
//! the same index always gives the same snapshot.
//!
//! Ingresses are taken in precedence order (oldest `creationTimestamp` first, then namespace
//! and name; objects without timestamp, as in a folder of manifests, after those with one), so
//! when two define the same host and path the older one wins, whatever order they arrived in.

pub mod annotations;
mod backend;
mod class;
mod diagnostic;
mod routes;
mod services;
mod tls;

use ferry_model::{ObjectRef, RouteTable, Snapshot};

pub use diagnostic::Diagnostic;

use crate::config::ControllerConfig;
use crate::index::{Index, IngressEntry};

/// A snapshot (generation 0: the publisher numbers it) and what is wrong in the objects.
#[derive(Debug)]
pub struct Translation {
    pub snapshot: Snapshot,
    pub diagnostics: Vec<Diagnostic>,
    /// The Ingresses of our class, whose status ferry maintains.
    pub ours: Vec<ObjectRef>,
}

pub fn translate(index: &Index, config: &ControllerConfig) -> Translation {
    let mut diagnostics = Vec::new();
    let classes = class::ClassSelector::new(index, config, &mut diagnostics);
    let mut ingresses: Vec<&IngressEntry> =
        index.ingresses().filter(|i| classes.is_ours(i)).collect();
    ingresses.sort_by(|a, b| {
        let age = |i: &IngressEntry| (i.created.is_none(), i.created);
        age(a).cmp(&age(b)).then_with(|| a.key.cmp(&b.key))
    });

    let ours = ingresses.iter().map(|i| i.key.clone()).collect();
    let (certs, tls_hosts) = tls::certificates(index, &ingresses, config, &mut diagnostics);
    let mut upstreams = backend::Upstreams::new(index);
    let mut table = RouteTable::builder();
    for ingress in ingresses {
        routes::add_ingress(
            ingress,
            &mut table,
            &mut upstreams,
            &tls_hosts,
            config,
            &mut diagnostics,
        );
    }
    Translation {
        snapshot: Snapshot {
            generation: 0,
            routes: table.build(),
            upstreams: upstreams.into_vec(),
            certs,
            node_name: config.node_name.as_deref().map(Into::into),
            services: std::sync::Arc::new(services::service_table(
                index,
                config.node_name.as_deref(),
            )),
        },
        diagnostics,
        ours,
    }
}
