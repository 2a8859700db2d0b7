//! Choosing an endpoint for a request, with per-endpoint state that outlives snapshot swaps.
//!
//! Two policies: round robin, and power-of-two-choices over a peak-EWMA latency estimate
//! multiplied by the requests in flight (as linkerd and Finagle do, and ingress-nginx's
//! `ewma`). The statistics of an endpoint are keyed by upstream and address and carried over
//! when a new snapshot keeps the endpoint, so an endpoint change elsewhere resets nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_model::{LoadBalance, Upstream, UpstreamTarget};
use rand::Rng;

/// How fast old latency samples fade: after `DECAY` a sample weighs 1/e.
const DECAY: Duration = Duration::from_secs(10);

/// What the balancer knows about one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    pub(crate) addr: SocketAddr,
    in_flight: AtomicU32,
    /// Latency estimate in nanoseconds, as `f64` bits.
    ewma_nanos: AtomicU64,
    /// When `ewma_nanos` was last updated, in nanoseconds since `epoch`.
    updated_nanos: AtomicU64,
    epoch: Instant,
}

impl EndpointStats {
    fn new(addr: SocketAddr, epoch: Instant) -> Self {
        EndpointStats {
            addr,
            in_flight: AtomicU32::new(0),
            ewma_nanos: AtomicU64::new(0f64.to_bits()),
            updated_nanos: AtomicU64::new(0),
            epoch,
        }
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
        let usable = |e: &&Arc<EndpointStats>| !avoid.contains(&e.addr);
        match self.policy {
            LoadBalance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.endpoints[(start + i) % n])
                    .find(usable)
            }
            LoadBalance::Ewma => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let b = (a + 1 + rng.random_range(0..n.max(2) - 1)) % n;
                let pick = |i: usize| Some(&self.endpoints[i]).filter(usable);
                match (pick(a), pick(b)) {
                    (Some(x), Some(y)) => Some(if y.score() < x.score() { y } else { x }),
                    (Some(x), None) | (None, Some(x)) => Some(x),
                    // Both sampled endpoints were avoided: take the best of the rest.
                    (None, None) => self
                        .endpoints
                        .iter()
                        .filter(usable)
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
