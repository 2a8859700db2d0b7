//! Choosing an endpoint for a request, with per-endpoint state that outlives snapshot swaps.
//!
//! Two policies: round robin, and power-of-two-choices over a peak-EWMA latency estimate
//! multiplied by the requests in flight (as linkerd and Finagle do, and ingress-nginx's
//! `ewma`). The statistics of an endpoint are keyed by upstream and address and carried over
//! when a new snapshot keeps the endpoint, so an endpoint change elsewhere resets nothing.
//!
//! Passive health (outlier detection, as Envoy's): an endpoint that fails
//! [`EJECT_AFTER`] times in a row (refused or failed connections, 502/503/504 answers, broken
//! responses) is ejected for [`EJECTION_BASE`], doubled at each ejection that follows without
//! a success in between (up to [`EJECTION_MAX`]); when the time is up it gets traffic again.
//! If every endpoint of an upstream is ejected, all of them are used: ejection only steers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_model::{LoadBalance, Upstream, UpstreamTarget};
use rand::Rng;

/// How fast old latency samples fade: after `DECAY` a sample weighs 1/e.
const DECAY: Duration = Duration::from_secs(10);

/// Consecutive failures that eject an endpoint.
pub(crate) const EJECT_AFTER: u32 = 5;
/// First ejection time; each further ejection without a success doubles it.
pub(crate) const EJECTION_BASE: Duration = Duration::from_secs(10);
/// Longest ejection.
pub(crate) const EJECTION_MAX: Duration = Duration::from_secs(160);

/// What the balancer knows about one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    pub(crate) addr: SocketAddr,
    in_flight: AtomicU32,
    /// Latency estimate in nanoseconds, as `f64` bits.
    ewma_nanos: AtomicU64,
    /// When `ewma_nanos` was last updated, in nanoseconds since `epoch`.
    updated_nanos: AtomicU64,
    /// Failures since the last success.
    failures: AtomicU32,
    /// Ejections since the last success (sets the next ejection's length).
    ejections: AtomicU32,
    /// Ejected until this many nanoseconds after `epoch` (0: never ejected).
    ejected_until_nanos: AtomicU64,
    epoch: Instant,
}

impl EndpointStats {
    fn new(addr: SocketAddr, epoch: Instant) -> Self {
        EndpointStats {
            addr,
            in_flight: AtomicU32::new(0),
            ewma_nanos: AtomicU64::new(0f64.to_bits()),
            updated_nanos: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until_nanos: AtomicU64::new(0),
            epoch,
        }
    }

    /// Whether the endpoint sits out of the rotation now.
    pub(crate) fn is_ejected(&self) -> bool {
        self.nanos_now() < self.ejected_until_nanos.load(Ordering::Relaxed)
    }

    /// The endpoint answered properly.
    pub(crate) fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 && !self.is_ejected() {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// The endpoint failed a request; returns the ejection time when this failure ejects it.
    pub(crate) fn record_failure(&self) -> Option<Duration> {
        if self.is_ejected() {
            // Requests already under way when it was ejected: not new evidence.
            return None;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < EJECT_AFTER {
            return None;
        }
        self.failures.store(0, Ordering::Relaxed);
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(8);
        let time = (EJECTION_BASE * 2u32.pow(n)).min(EJECTION_MAX);
        self.ejected_until_nanos
            .store(self.nanos_now() + time.as_nanos() as u64, Ordering::Relaxed);
        Some(time)
    }

    /// Lower is better: expected latency scaled by the queue in front of it. The estimate
    /// fades while an endpoint gets no traffic, so one that was slow once is tried again
    /// rather than shunned forever.
    fn score(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_nanos.load(Ordering::Relaxed));
        let idle = self
            .nanos_now()
            .saturating_sub(self.updated_nanos.load(Ordering::Relaxed));
        let faded = ewma * decay_weight(idle);
        faded * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    fn nanos_now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Folds in one observed latency. Peak-sensitive: a slower sample is taken at once, faster
    /// ones pull the estimate down with exponential decay over time.
    pub(crate) fn observe(&self, latency: Duration) {
        let now = self.nanos_now();
        let then = self.updated_nanos.swap(now, Ordering::Relaxed);
        let sample = latency.as_nanos() as f64;
        let old = f64::from_bits(self.ewma_nanos.load(Ordering::Relaxed));
        let new = if sample > old {
            sample
        } else {
            let weight = decay_weight(now.saturating_sub(then));
            old * weight + sample * (1.0 - weight)
        };
        // Racing updates may lose a sample; the estimate stays an estimate.
        self.ewma_nanos.store(new.to_bits(), Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// How much of an estimate is left after `elapsed_nanos`.
fn decay_weight(elapsed_nanos: u64) -> f64 {
    (-(elapsed_nanos as f64) / DECAY.as_nanos() as f64).exp()
}

/// Counts a request against an endpoint while it is alive.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<EndpointStats>);

impl InFlight {
    pub(crate) fn new(stats: Arc<EndpointStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats)
    }

    pub(crate) fn stats(&self) -> &EndpointStats {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoints of one upstream and the policy that picks among them.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: LoadBalance,
    endpoints: Box<[Arc<EndpointStats>]>,
    next: AtomicUsize,
}

impl Balancer {
    /// Builds the balancer of `upstream`, reusing the statistics `previous` holds for the same
    /// upstream and address.
    pub(crate) fn new(upstream: &Upstream, previous: &Carryover, epoch: Instant) -> Self {
        let endpoints = match &upstream.target {
            UpstreamTarget::Endpoints(endpoints) => endpoints
                .iter()
                .map(|e| {
                    previous
                        .get(&(upstream.name.clone(), e.addr))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(EndpointStats::new(e.addr, epoch)))
                })
                .collect(),
            UpstreamTarget::ExternalName { .. } => Box::default(),
        };
        Balancer {
            policy: upstream.load_balance,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn endpoints(&self) -> &[Arc<EndpointStats>] {
        &self.endpoints
    }

    /// An endpoint for a new attempt, other than those in `avoid` (the ones this request
    /// already failed on). `None` when every endpoint is avoided or there are none.
    pub(crate) fn select(&self, avoid: &[SocketAddr]) -> Option<&Arc<EndpointStats>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        // Ejected endpoints sit out unless nothing else is left.
        let healthy = |e: &&Arc<EndpointStats>| !avoid.contains(&e.addr) && !e.is_ejected();
        self.select_among(healthy).or_else(|| {
            let usable = |e: &&Arc<EndpointStats>| !avoid.contains(&e.addr);
            self.select_among(usable)
        })
    }

    fn select_among(
        &self,
        usable: impl Fn(&&Arc<EndpointStats>) -> bool,
    ) -> Option<&Arc<EndpointStats>> {
        let n = self.endpoints.len();
        match self.policy {
            LoadBalance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.endpoints[(start + i) % n])
                    .find(&usable)
            }
            LoadBalance::Ewma => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let b = (a + 1 + rng.random_range(0..n.max(2) - 1)) % n;
                let pick = |i: usize| Some(&self.endpoints[i]).filter(&usable);
                match (pick(a), pick(b)) {
                    (Some(x), Some(y)) => Some(if y.score() < x.score() { y } else { x }),
                    (Some(x), None) | (None, Some(x)) => Some(x),
                    // Both sampled endpoints were avoided: take the best of the rest.
                    (None, None) => self
                        .endpoints
                        .iter()
                        .filter(&usable)
                        .min_by(|x, y| x.score().total_cmp(&y.score())),
                }
            }
        }
    }
}

/// Endpoint statistics of a replaced state, by upstream name and address.
pub(crate) type Carryover = HashMap<(Arc<str>, SocketAddr), Arc<EndpointStats>>;

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_model::{Endpoint, ObjectRef};

    fn upstream(policy: LoadBalance, ports: &[u16]) -> Upstream {
        Upstream {
            index: 0,
            name: "default/svc:80".into(),
            service: ObjectRef::new("default", "svc"),
            load_balance: policy,
            target: UpstreamTarget::Endpoints(
                ports
                    .iter()
                    .map(|p| Endpoint {
                        addr: SocketAddr::from(([127, 0, 0, 1], *p)),
                        node_name: None,
                    })
                    .collect(),
            ),
        }
    }

    fn port(e: &EndpointStats) -> u16 {
        e.addr.port()
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let b = Balancer::new(
            &upstream(LoadBalance::RoundRobin, &[1, 2, 3]),
            &Carryover::new(),
            Instant::now(),
        );
        let picks: Vec<u16> = (0..6).map(|_| port(b.select(&[]).unwrap())).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn consecutive_failures_eject_for_a_doubling_time_and_a_success_forgives() {
        for policy in [LoadBalance::RoundRobin, LoadBalance::Ewma] {
            let b = Balancer::new(
                &upstream(policy, &[1, 2]),
                &Carryover::new(),
                Instant::now(),
            );
            let bad = b.endpoints()[0].clone();
            for _ in 1..EJECT_AFTER {
                assert_eq!(bad.record_failure(), None);
            }
            assert_eq!(bad.record_failure(), Some(EJECTION_BASE));
            assert!(bad.is_ejected());
            for _ in 0..20 {
                assert_eq!(
                    port(b.select(&[]).unwrap()),
                    2,
                    "{policy}: ejected sits out"
                );
            }
            // Alone, an ejected endpoint is still used (never nothing).
            let two = SocketAddr::from(([127, 0, 0, 1], 2));
            assert_eq!(port(b.select(&[two]).unwrap()), 1);
            // Once its time is up, the next run of failures ejects it for twice as long.
            bad.ejected_until_nanos.store(0, Ordering::Relaxed);
            for _ in 1..EJECT_AFTER {
                bad.record_failure();
            }
            assert_eq!(bad.record_failure(), Some(EJECTION_BASE * 2));
            // A success after the ejection resets the count and the doubling.
            bad.ejected_until_nanos.store(0, Ordering::Relaxed);
            bad.record_success();
            for _ in 1..EJECT_AFTER {
                bad.record_failure();
            }
            assert_eq!(bad.record_failure(), Some(EJECTION_BASE));
        }
    }

    #[test]
    fn avoided_endpoints_are_skipped() {
        for policy in [LoadBalance::RoundRobin, LoadBalance::Ewma] {
            let b = Balancer::new(
                &upstream(policy, &[1, 2]),
                &Carryover::new(),
                Instant::now(),
            );
            let one = SocketAddr::from(([127, 0, 0, 1], 1));
            for _ in 0..20 {
                assert_eq!(port(b.select(&[one]).unwrap()), 2, "{policy}");
            }
            let two = SocketAddr::from(([127, 0, 0, 1], 2));
            assert!(b.select(&[one, two]).is_none());
        }
        let empty = Balancer::new(
            &upstream(LoadBalance::Ewma, &[]),
            &Carryover::new(),
            Instant::now(),
        );
        assert!(empty.select(&[]).is_none());
    }

    #[test]
    fn ewma_prefers_the_faster_endpoint() {
        let b = Balancer::new(
            &upstream(LoadBalance::Ewma, &[1, 2]),
            &Carryover::new(),
            Instant::now(),
        );
        b.endpoints()[0].observe(Duration::from_millis(100));
        b.endpoints()[1].observe(Duration::from_millis(1));
        // With two endpoints both are always sampled: the faster must always win.
        for _ in 0..50 {
            assert_eq!(port(b.select(&[]).unwrap()), 2);
        }
        // Load in flight on the fast one shifts traffic: 1ms * 200 > 100ms * 1.
        let _busy: Vec<InFlight> = (0..200)
            .map(|_| InFlight::new(b.endpoints()[1].clone()))
            .collect();
        assert_eq!(port(b.select(&[]).unwrap()), 1);
    }

    #[test]
    fn ewma_decays_towards_faster_samples_and_jumps_to_slower() {
        let stats = EndpointStats::new(SocketAddr::from(([127, 0, 0, 1], 1)), Instant::now());
        stats.observe(Duration::from_millis(10));
        stats.observe(Duration::from_millis(50));
        let peak = f64::from_bits(stats.ewma_nanos.load(Ordering::Relaxed));
        assert_eq!(peak, 50e6);
        stats.observe(Duration::from_millis(1));
        let after = f64::from_bits(stats.ewma_nanos.load(Ordering::Relaxed));
        assert!(after <= peak && after >= 1e6, "{after}");
    }

    #[test]
    fn statistics_carry_over_by_upstream_and_address() {
        let epoch = Instant::now();
        let old = Balancer::new(
            &upstream(LoadBalance::Ewma, &[1, 2]),
            &Carryover::new(),
            epoch,
        );
        let _held = InFlight::new(old.endpoints()[1].clone());
        let carry: Carryover = old
            .endpoints()
            .iter()
            .map(|e| (("default/svc:80".into(), e.addr), e.clone()))
            .collect();
        let new = Balancer::new(&upstream(LoadBalance::Ewma, &[2, 3]), &carry, epoch);
        assert!(Arc::ptr_eq(&new.endpoints()[0], &old.endpoints()[1]));
        assert_eq!(new.endpoints()[0].in_flight(), 1);
        assert_eq!(new.endpoints()[1].in_flight(), 0);
    }
}
