//! What the leader writes back: `status.loadBalancer.ingress` of our Ingresses, and Events on
//! Ingresses for the problems users must see. Computed by the sync loop after each batch of
//! changes as a [`Plan`]; carried out by [`run`] while this replica leads.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_model::ObjectRef;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::config::CONTROLLER_NAME;
use crate::index::Index;
use crate::translate::Diagnostic;

/// Which addresses Ingress status publishes.
#[derive(Debug, Clone, Default)]
pub struct StatusConfig {
    /// Write status at all (`--update-status`).
    pub enabled: bool,
    /// Fixed addresses (`--publish-status-address`), IPs or hostnames.
    pub addresses: Vec<String>,
    /// Use this Service's load-balancer addresses (`--publish-service`).
    pub publish_service: Option<ObjectRef>,
}

/// A problem to report as a Kubernetes Event on an Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Problem {
    pub(super) ingress: ObjectRef,
    pub(super) uid: Option<String>,
    pub(super) reason: String,
    pub(super) message: String,
}

/// What the leader should do now.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Plan {
    /// Ingresses whose status must change, with the addresses it must hold (empty: cleared).
    pub(super) status: Vec<(ObjectRef, Vec<String>)>,
    pub(super) problems: Vec<Problem>,
}

/// The addresses our Ingresses' status should hold.
pub(super) fn addresses(index: &Index, config: &StatusConfig) -> Vec<String> {
    let mut found: Vec<String> = if !config.addresses.is_empty() {
        config.addresses.clone()
    } else if let Some(service) = &config.publish_service {
        index
            .service(&service.namespace, &service.name)
            .map(|s| s.load_balancer.clone())
            .unwrap_or_default()
    } else {
        // ferry runs on the nodes' network: the nodes are where clients reach it.
        index
            .nodes()
            .filter_map(|n| n.public_address())
            .map(str::to_owned)
            .collect()
    };
    found.sort();
    found.dedup();
    found
}

pub(super) fn plan(
    index: &Index,
    ours: &[ObjectRef],
    addresses: &[String],
    diagnostics: &[Diagnostic],
) -> Plan {
    let ours_set: HashSet<&ObjectRef> = ours.iter().collect();
    let mut status = Vec::new();
    for ingress in index.ingresses() {
        let key = &ingress.key;
        let current = index.ingress_status(&key.namespace, &key.name);
        if ours_set.contains(key) {
            if current != addresses {
                status.push((key.clone(), addresses.to_vec()));
            }
        } else if !current.is_empty() && current == addresses {
            // It left our class (or was never ours but carries our addresses): clear it.
            status.push((key.clone(), Vec::new()));
        }
    }
    let problems = diagnostics
        .iter()
        .filter_map(|d| {
            let ingress = d.ingress()?;
            let uid = index
                .ingresses()
                .find(|i| &i.key == ingress)
                .and_then(|i| i.uid.clone());
            Some(Problem {
                ingress: ingress.clone(),
                uid,
                reason: d.reason(),
                message: d.to_string(),
            })
        })
        .collect();
    Plan { status, problems }
}

fn load_balancer_entry(address: &str) -> serde_json::Value {
    if address.parse::<IpAddr>().is_ok() {
        serde_json::json!({ "ip": address })
    } else {
        serde_json::json!({ "hostname": address })
    }
}

/// Carries out plans while `leader` is true, until `shutdown`. A failed write is retried a
/// few seconds later; Events are sent once per problem while it lasts (again after a new
/// leader takes over).
pub(super) async fn run(
    client: Client,
    identity: String,
    mut plans: watch::Receiver<Arc<Plan>>,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(identity),
        },
    );
    let mut reported: HashSet<Problem> = HashSet::new();
    let mut pending = false;
    loop {
        tokio::select! {
            changed = plans.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)), if pending => {}
            _ = shutdown.changed() => return,
        }
        if !*leader.borrow() {
            reported.clear();
            pending = false;
            continue;
        }
        let plan = plans.borrow().clone();
        pending = false;
        for (ingress, addresses) in &plan.status {
            let api: Api<Ingress> = Api::namespaced(client.clone(), &ingress.namespace);
            let entries: Vec<_> = addresses.iter().map(|a| load_balancer_entry(a)).collect();
            let ingress_list = if entries.is_empty() {
                serde_json::Value::Null
            } else {
                entries.into()
            };
            let patch =
                serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress_list } } });
            match api
                .patch_status(
                    &ingress.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(ingress = %ingress, ?addresses, "Ingress status updated");
                    super::STATUS_UPDATES.with_label_values(&["ok"]).inc();
                }
                Err(e) => {
                    tracing::warn!(ingress = %ingress, error = %e, "cannot update Ingress status; retrying");
                    super::STATUS_UPDATES.with_label_values(&["error"]).inc();
                    pending = true;
                }
            }
        }
        reported.retain(|p| plan.problems.contains(p));
        for problem in &plan.problems {
            if reported.contains(problem) {
                continue;
            }
            let reference = ObjectReference {
                api_version: Some("networking.k8s.io/v1".to_owned()),
                kind: Some("Ingress".to_owned()),
                name: Some(problem.ingress.name.to_string()),
                namespace: Some(problem.ingress.namespace.to_string()),
                uid: problem.uid.clone(),
                ..ObjectReference::default()
            };
            let mut note = problem.message.clone();
            note.truncate(1000);
            let event = Event {
                type_: EventType::Warning,
                reason: problem.reason.clone(),
                note: Some(note),
                action: "Translate".to_owned(),
                secondary: None,
            };
            match recorder.publish(&event, &reference).await {
                Ok(()) => drop(reported.insert(problem.clone())),
                Err(e) => {
                    tracing::warn!(ingress = %problem.ingress, error = %e, "cannot create Event; retrying");
                    pending = true;
                }
            }
        }
    }
}
