//! The data plane's view of the current snapshot, swapped atomically.
//!
//! [`Router`] receives snapshots from the controller ([`SnapshotSink`]) and pairs each with
//! the per-upstream balancers the proxy needs, carrying endpoint statistics over from the state
//! it replaces. Requests load the current [`State`] once (`arc-swap`, no lock) and keep that
//! `Arc` for their whole life, so a swap never changes a request half-way.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use ferry_model::{Snapshot, SnapshotSink};
use tokio::sync::watch;

use crate::l7::balance::{Balancer, Carryover};
use crate::telemetry;

/// A snapshot with the balancing state of each of its upstreams.
#[derive(Debug)]
pub struct State {
    pub snapshot: Snapshot,
    /// `balancers[i]` serves `snapshot.upstreams[i]`.
    pub(crate) balancers: Box<[Balancer]>,
}

/// The current state, shared by the proxy, the admin server and the controller's publisher.
#[derive(Debug)]
pub struct Router {
    current: ArcSwapOption<State>,
    /// Serialises publishers; never taken on the request path.
    publish: Mutex<()>,
    epoch: Instant,
    /// The generation served, for those who follow changes (the L4 path).
    changes: watch::Sender<u64>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            current: ArcSwapOption::empty(),
            publish: Mutex::new(()),
            epoch: Instant::now(),
            changes: watch::channel(0).0,
        }
    }
}

impl Router {
    pub fn new() -> Arc<Self> {
        Arc::new(Router::default())
    }

    /// The state to serve a request from; `None` until a first snapshot was published.
    pub fn current(&self) -> Option<Arc<State>> {
        self.current.load_full()
    }

    /// Tells when a new snapshot is served.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether a snapshot is being served (readiness).
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }
}

impl SnapshotSink for Router {
    fn publish(&self, snapshot: Snapshot) {
        let _one_at_a_time = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        let carryover: Carryover = self
            .current
            .load()
            .iter()
            .flat_map(|old| {
                old.snapshot
                    .upstreams
                    .iter()
                    .zip(old.balancers.iter())
                    .flat_map(|(u, b)| {
                        b.endpoints()
                            .iter()
                            .map(|e| ((u.name.clone(), e.addr), e.clone()))
                    })
            })
            .collect();
        let balancers = snapshot
            .upstreams
            .iter()
            .map(|u| Balancer::new(u, &carryover, self.epoch))
            .collect();
        telemetry::snapshot_served(&snapshot);
        let generation = snapshot.generation;
        self.current.store(Some(Arc::new(State {
            snapshot,
            balancers,
        })));
        self.changes.send_replace(generation);
    }
}
