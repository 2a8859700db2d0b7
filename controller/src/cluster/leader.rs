//! Leader election on a `coordination.k8s.io/v1` Lease, with kube-rs primitives: get, create,
//! and update with the resourceVersion read (the API server refuses a stale update, so two
//! replicas can never both win the same renewal). Only the leader writes Ingress status and
//! Events; every replica serves traffic.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

/// Where the Lease is and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// How long a Lease not renewed stays with its holder.
    pub duration: Duration,
    /// A leader that could not renew for this long steps down (shorter than `duration`, so
    /// it stops before another replica may take over).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: "ferry-leader".to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Runs the election until `shutdown`; `leader` says whether this replica leads. On shutdown a
/// leader gives the Lease up so another replica takes over at once.
pub(super) async fn run(
    api: Api<Lease>,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_renewal: Option<Instant> = None;
    loop {
        match try_lead(&api, &config).await {
            Ok(true) => last_renewal = Some(Instant::now()),
            Ok(false) => last_renewal = None,
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "leader election: cannot reach the Lease")
            }
        }
        let leading = last_renewal.is_some_and(|t| t.elapsed() < config.renew_deadline);
        if leader.send_replace(leading) != leading {
            tracing::info!(identity = %config.identity, leading, "leadership changed");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retry_period) => {}
            _ = shutdown.changed() => break,
        }
    }
    if *leader.borrow() {
        leader.send_replace(false);
        if let Err(e) = release(&api, &config).await {
            tracing::warn!(error = %e, "could not give up the Lease; another replica takes over when it expires");
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One round: create the Lease, renew ours, or take an expired one. `Ok(true)` when we hold it.
async fn try_lead(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let duration_secs = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return settle(api.create(&PostParams::default(), &lease).await);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    if !ours {
        let held_for = SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds.unwrap_or(duration_secs),
        ));
        let expired = match (&spec.holder_identity, &spec.renew_time) {
            (Some(_), Some(renewed)) => renewed.0 + held_for < Timestamp::now(),
            _ => true,
        };
        if !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration_secs);
    // The resourceVersion read above makes this conditional: a concurrent change wins.
    settle(
        api.replace(&config.name, &PostParams::default(), &lease)
            .await,
    )
}

/// A write that lost a race (409) means another replica holds the Lease.
fn settle(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(drop)
}
