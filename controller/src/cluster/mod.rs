//! Cluster mode: the Kubernetes API as the source. One watcher per kind feeds the same
//! [`Index`] the manifests mode fills, and the same translation makes the snapshot.
//!
//! ```text
//!  watchers (kube-runtime, backoff) ──▶ sync loop ──────────────────▶ translate ─▶ Publisher ─▶ sink
//!   Ingress, IngressClass, Service,      apply/delete; a relist          (pure)
//!   EndpointSlice, Endpoints,            replaces a kind at once;
//!   Secret (type=kubernetes.io/tls),     debounced rebuilds
//!   Node                                        │ Plan (status, problems)
//!  Lease ◀── leader election ── leader? ──▶ status writer ──▶ Ingress status, Events
//! ```
//!
//! The first snapshot is published only once every watch has listed; until then the proxy
//! does not listen and `/readyz` says not ready. A failing watch backs off and resumes (a
//! watch starts over with a list); meanwhile the last snapshot keeps serving and
//! `ferry_watch_stale` says which kinds are behind. A relist that finds what is served
//! publishes nothing.

mod leader;
pub mod rbac;
mod status;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ferry_model::{ObjectRef, SnapshotSink};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Endpoints, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use prometheus::{Histogram, IntCounterVec, IntGauge, IntGaugeVec};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

pub use leader::LeaseConfig;
pub use status::StatusConfig;

use crate::config::ControllerConfig;
use crate::index::{Index, Object, TLS_SECRET_TYPE};
use crate::object::Kind;
use crate::publish::Publisher;
use crate::translate::{Diagnostic, translate};

static STALE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "ferry_watch_stale",
        "1 while the watch of a kind is failing (the last snapshot keeps serving), else 0.",
        &["kind"]
    )
    .expect("metric registers once")
});

static EVENT_TO_SERVED: LazyLock<Histogram> = LazyLock::new(|| {
    prometheus::register_histogram!(
        "ferry_snapshot_event_to_served_seconds",
        "Time from the first API event of a batch to the new snapshot being served.",
        vec![0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

static LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "ferry_leader",
        "1 while this replica holds the leader Lease (and writes Ingress status and Events)."
    )
    .expect("metric registers once")
});

pub(crate) static STATUS_UPDATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "ferry_ingress_status_updates_total",
        "Ingress status writes by the leader, by result.",
        &["result"]
    )
    .expect("metric registers once")
});

/// How ferry talks to the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Watch namespaced kinds in this namespace only (`--watch-namespace`); all when `None`.
    pub namespace: Option<String>,
    pub lease: LeaseConfig,
    pub status: StatusConfig,
    /// Longest wait between attempts of a failing watch.
    pub backoff_max: Duration,
}

/// One watcher event, with the kind it is about.
enum Update {
    Init(Kind),
    InitApply(Object),
    InitDone(Kind),
    Apply(Object),
    Delete(Object),
    Error(Kind, String),
}

/// The watch of one kind. After an error it waits (doubling up to `backoff_max`) and starts
/// over with a fresh list: the relist says what exists now, whatever happened meanwhile, and
/// its completion is how the sync loop learns the kind is current again.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: Kind,
    backoff_max: Duration,
    wrap: fn(K) -> Object,
) -> BoxStream<'static, Update>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start = move || watcher::watcher(api.clone(), config.clone()).boxed();
    let first = start();
    stream::unfold(
        (first, start, Doubling::new(backoff_max)),
        move |(mut events, start, mut backoff)| async move {
            let update = match events.next().await? {
                Ok(event) => {
                    backoff.reset();
                    match event {
                        watcher::Event::Init => Update::Init(kind),
                        watcher::Event::InitApply(o) => Update::InitApply(wrap(o)),
                        watcher::Event::InitDone => Update::InitDone(kind),
                        watcher::Event::Apply(o) => Update::Apply(wrap(o)),
                        watcher::Event::Delete(o) => Update::Delete(wrap(o)),
                    }
                }
                Err(e) => {
                    tokio::time::sleep(backoff.next().unwrap_or(backoff_max)).await;
                    events = start();
                    Update::Error(kind, e.to_string())
                }
            };
            Some((update, (events, start, backoff)))
        },
    )
    .boxed()
}

fn watchers(client: &Client, config: &ClusterConfig) -> SelectAll<BoxStream<'static, Update>> {
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = &config.namespace;
    let all = watcher::Config::default();
    let max = config.backoff_max;
    stream::select_all([
        watch(
            api::<Ingress>(client, ns),
            all.clone(),
            Kind::Ingress,
            max,
            |o| Object::Ingress(Box::new(o)),
        ),
        watch(
            Api::<IngressClass>::all(client.clone()),
            all.clone(),
            Kind::IngressClass,
            max,
            |o| Object::IngressClass(Box::new(o)),
        ),
        watch(
            api::<Service>(client, ns),
            all.clone(),
            Kind::Service,
            max,
            |o| Object::Service(Box::new(o)),
        ),
        watch(
            api::<EndpointSlice>(client, ns),
            all.clone(),
            Kind::EndpointSlice,
            max,
            |o| Object::EndpointSlice(Box::new(o)),
        ),
        watch(
            api::<Endpoints>(client, ns),
            all.clone(),
            Kind::Endpoints,
            max,
            |o| Object::Endpoints(Box::new(o)),
        ),
        // Only certificates: ferry has no business reading other Secrets.
        watch(
            api::<Secret>(client, ns),
            all.clone().fields(&format!("type={TLS_SECRET_TYPE}")),
            Kind::Secret,
            max,
            |o| Object::Secret(Box::new(o)),
        ),
        watch(
            Api::<Node>::all(client.clone()),
            all,
            Kind::Node,
            max,
            |o| Object::Node(Box::new(o)),
        ),
    ])
}

/// Waits between attempts of a failing watch: 200 ms doubling up to `max`, from the start
/// again after a success.
#[derive(Debug)]
struct Doubling {
    next: Duration,
    max: Duration,
}

impl Doubling {
    const FIRST: Duration = Duration::from_millis(200);

    fn new(max: Duration) -> Self {
        Doubling {
            next: Self::FIRST.min(max),
            max,
        }
    }
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(wait)
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }
}

/// The state of the sync loop.
struct Sync {
    index: Index,
    /// Objects of a relist in progress, by kind.
    relisting: HashMap<Kind, Vec<Object>>,
    synced: HashSet<Kind>,
    /// When the first and the last change of the pending batch arrived.
    pending: Option<(Instant, Instant)>,
    published: Option<Index>,
    publisher: Publisher,
    /// From the last translation, for the status plan of batches that change no snapshot.
    ours: Vec<ObjectRef>,
    diagnostics: Vec<Diagnostic>,
}

impl Sync {
    fn handle(&mut self, update: Update) {
        let now = Instant::now();
        let mut changed = |kind: Kind| {
            STALE.with_label_values(&[kind.name()]).set(0);
            let first = self.pending.map_or(now, |(first, _)| first);
            self.pending = Some((first, now));
        };
        match update {
            Update::Init(kind) => drop(self.relisting.insert(kind, Vec::new())),
            Update::InitApply(object) => {
                let kind = object.key().kind;
                self.relisting.entry(kind).or_default().push(object);
            }
            Update::InitDone(kind) => {
                let objects = self.relisting.remove(&kind).unwrap_or_default();
                for refused in self.index.replace(kind, &objects) {
                    tracing::warn!(error = %refused, "object refused; its previous version (if any) stays");
                }
                if self.synced.insert(kind) {
                    tracing::info!(kind = kind.name(), objects = objects.len(), "listed");
                }
                changed(kind);
            }
            Update::Apply(object) => {
                let kind = object.key().kind;
                if let Err(refused) = self.index.apply(&object) {
                    tracing::warn!(error = %refused, "object refused; its previous version (if any) stays");
                }
                changed(kind);
            }
            Update::Delete(object) => {
                let key = object.key();
                self.index.delete(&key);
                changed(key.kind);
            }
            Update::Error(kind, error) => {
                STALE.with_label_values(&[kind.name()]).set(1);
                tracing::warn!(kind = kind.name(), %error, "watch failed; retrying, the last snapshot keeps serving");
            }
        }
    }

    /// When to rebuild: once every kind has listed, after the batch has been quiet for
    /// `debounce` (or has lasted ten times that).
    fn deadline(&self, debounce: Duration) -> Option<Instant> {
        let (first, last) = self.pending?;
        (self.synced.len() == Kind::ALL.len()).then(|| (last + debounce).min(first + debounce * 10))
    }

    /// Rebuilds and publishes if the snapshot would change; returns whether it published.
    fn rebuild(&mut self, config: &ControllerConfig) -> bool {
        let Some((first, _)) = self.pending.take() else {
            return false;
        };
        let started = std::time::Instant::now();
        if self.published.as_ref() == Some(&self.index) {
            self.publisher.unchanged(started);
            return false;
        }
        let translation = translate(&self.index, config);
        self.publisher
            .publish(translation.snapshot, &translation.diagnostics, started);
        EVENT_TO_SERVED.observe(first.elapsed().as_secs_f64());
        self.ours = translation.ours;
        self.diagnostics = translation.diagnostics;
        self.published = Some(self.index.clone());
        true
    }
}

/// Runs cluster mode until `shutdown` turns true: watches, publishes into `sink`, calls
/// `on_ready` once the first snapshot is served, and (when status is enabled) takes part in
/// leader election and writes status and Events while leading.
pub async fn run(
    client: Client,
    controller: ControllerConfig,
    cluster: ClusterConfig,
    sink: Arc<dyn SnapshotSink>,
    on_ready: impl FnOnce() + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    for kind in Kind::ALL {
        STALE.with_label_values(&[kind.name()]).set(0);
    }
    LazyLock::force(&EVENT_TO_SERVED);
    LazyLock::force(&STATUS_UPDATES);
    let (plan_tx, plan_rx) = watch::channel(Arc::new(status::Plan::default()));
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if cluster.status.enabled {
        let leases = Api::namespaced(client.clone(), &cluster.lease.namespace);
        tasks.spawn(leader::run(
            leases,
            cluster.lease.clone(),
            leader_tx,
            shutdown.clone(),
        ));
        tasks.spawn(status::run(
            client.clone(),
            cluster.lease.identity.clone(),
            plan_rx,
            leader_rx.clone(),
            shutdown.clone(),
        ));
    }
    let mut updates = watchers(&client, &cluster);
    let mut sync = Sync {
        index: Index::default(),
        relisting: HashMap::new(),
        synced: HashSet::new(),
        pending: None,
        published: None,
        publisher: Publisher::new(sink),
        ours: Vec::new(),
        diagnostics: Vec::new(),
    };
    let mut on_ready = Some(on_ready);
    loop {
        let deadline = sync.deadline(controller.debounce);
        tokio::select! {
            update = updates.next() => match update {
                Some(update) => sync.handle(update),
                None => break,
            },
            () = sleep_until(deadline) => {
                sync.rebuild(&controller);
                if let Some(ready) = on_ready.take() {
                    tracing::info!("every watch has listed; serving");
                    ready();
                }
                let addresses = status::addresses(&sync.index, &cluster.status);
                let plan = status::plan(&sync.index, &sync.ours, &addresses, &sync.diagnostics);
                plan_tx.send_if_modified(|current| {
                    let modified = **current != plan;
                    if modified {
                        *current = Arc::new(plan);
                    }
                    modified
                });
            }
            changed = leader_rx.changed(), if cluster.status.enabled => {
                if changed.is_ok() {
                    LEADER.set(i64::from(*leader_rx.borrow()));
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    // The election gives the Lease up on shutdown; let it.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    LEADER.set(0);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
