//! Hands translations to the data plane, numbers them, and tells users what changed: metrics
//! for every rebuild, a log line for each problem when it first appears and when it is gone.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferry_model::{Snapshot, SnapshotSink};
use prometheus::{
    Gauge, Histogram, IntCounterVec, IntGaugeVec, register_gauge, register_histogram,
    register_int_counter_vec, register_int_gauge_vec,
};

use crate::translate::Diagnostic;

static REBUILDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "ferry_snapshot_rebuilds_total",
        "Snapshot rebuilds, by result: published, unchanged (nothing to publish), rejected (bad input; the last good snapshot keeps serving).",
        &["result"]
    )
    .expect("metric registers once")
});

static LAST_SUCCESS: LazyLock<Gauge> = LazyLock::new(|| {
    register_gauge!(
        "ferry_snapshot_last_success_timestamp_seconds",
        "Unix time of the last rebuild that succeeded (published or unchanged)."
    )
    .expect("metric registers once")
});

static REBUILD_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "ferry_snapshot_rebuild_duration_seconds",
        "Time to read the sources, translate and publish a snapshot.",
        vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .expect("metric registers once")
});

static PROBLEMS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "ferry_config_problems",
        "Problems found in the objects of the served snapshot, by kind.",
        &["kind"]
    )
    .expect("metric registers once")
});

/// What happened to a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Published(u64),
    Unchanged,
    Rejected,
}

/// Publishes snapshots into a sink; one per source.
pub struct Publisher {
    sink: Arc<dyn SnapshotSink>,
    generation: u64,
    problems: BTreeSet<String>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(sink: Arc<dyn SnapshotSink>) -> Self {
        LazyLock::force(&REBUILDS);
        LazyLock::force(&LAST_SUCCESS);
        LazyLock::force(&REBUILD_DURATION);
        LazyLock::force(&PROBLEMS);
        Publisher {
            sink,
            generation: 0,
            problems: BTreeSet::new(),
        }
    }

    /// Generation of the last snapshot published (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Publishes a translation's snapshot and reports its problems; `started` is when the
    /// rebuild began reading its sources.
    pub fn publish(
        &mut self,
        mut snapshot: Snapshot,
        diagnostics: &[Diagnostic],
        started: Instant,
    ) -> u64 {
        self.generation += 1;
        snapshot.generation = self.generation;
        let (routes, upstreams) = (snapshot.routes.routes().len(), snapshot.upstreams.len());
        self.sink.publish(snapshot);
        self.report(diagnostics);
        self.finish(Outcome::Published(self.generation), started);
        tracing::info!(
            generation = self.generation,
            routes,
            upstreams,
            "snapshot published"
        );
        self.generation
    }

    /// Records a rebuild that had nothing new to publish.
    pub fn unchanged(&self, started: Instant) {
        self.finish(Outcome::Unchanged, started);
    }

    /// Records a rebuild refused for bad input; what is served does not change.
    pub fn rejected(&self, started: Instant) {
        self.finish(Outcome::Rejected, started);
    }

    fn finish(&self, outcome: Outcome, started: Instant) {
        REBUILD_DURATION.observe(started.elapsed().as_secs_f64());
        let result = match outcome {
            Outcome::Published(_) => "published",
            Outcome::Unchanged => "unchanged",
            Outcome::Rejected => "rejected",
        };
        REBUILDS.with_label_values(&[result]).inc();
        if outcome != Outcome::Rejected {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            LAST_SUCCESS.set(now.as_secs_f64());
        }
    }

    /// Logs problems that are new since the last snapshot, and those that went away.
    fn report(&mut self, diagnostics: &[Diagnostic]) {
        PROBLEMS.reset();
        for d in diagnostics {
            PROBLEMS.with_label_values(&[d.kind()]).inc();
        }
        let now: BTreeSet<String> = diagnostics.iter().map(ToString::to_string).collect();
        for new in now.difference(&self.problems) {
            tracing::warn!(problem = %new, "configuration problem");
        }
        for gone in self.problems.difference(&now) {
            tracing::info!(problem = %gone, "configuration problem resolved");
        }
        self.problems = now;
    }
}
