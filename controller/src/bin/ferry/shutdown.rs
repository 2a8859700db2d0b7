//! How ferry stops. SIGTERM (what Kubernetes sends) is a graceful stop: `/readyz` answers 503
//! at once, the listeners keep accepting for `--shutdown-delay` (load balancers take a few
//! health checks to notice), then close; requests in flight get up to `--drain-timeout` to
//! finish and ferry exits 0 as soon as no client connection is left. SIGINT stops at once.
//! SIGQUIT hands the listening sockets to a new ferry started with `--upgrade`, then drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_dataplane::admin::Readiness;
use ferry_dataplane::telemetry;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{SignalKind, signal};

/// How long pingora keeps accepting beside the new process after handing the listeners over
/// (its `CLOSE_TIMEOUT`).
const UPGRADE_OVERLAP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub(crate) struct ShutdownConfig {
    pub(crate) delay: Duration,
    pub(crate) drain: Duration,
}

impl ShutdownConfig {
    /// pingora's grace period (whole seconds) after the listeners close: the drain timeout,
    /// rounded up. [`exit_when_drained`] ends it early.
    pub(crate) fn grace_period_seconds(&self) -> u64 {
        self.drain.as_secs() + u64::from(self.drain.subsec_nanos() > 0)
    }
}

/// Waits for the signal that stops ferry, and does the first half of a graceful stop.
pub(crate) struct Signals {
    pub(crate) config: ShutdownConfig,
    pub(crate) readiness: Arc<Readiness>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler installs");
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: stopping now");
                return ShutdownSignal::FastShutdown;
            }
            _ = quit.recv() => {
                // pingora hands the listeners to the new process, keeps accepting beside it
                // for 5 s, then closes them; the drain follows.
                tracing::info!("SIGQUIT: handing the listeners over to the new ferry");
                exit_when_drained(self.config.drain, UPGRADE_OVERLAP);
                return ShutdownSignal::GracefulUpgrade;
            }
            _ = terminate.recv() => {}
        }
        self.readiness.drain();
        tracing::info!(
            delay = ?self.config.delay,
            drain_timeout = ?self.config.drain,
            "SIGTERM: not ready any more; still accepting connections for the shutdown delay"
        );
        tokio::select! {
            _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            _ = tokio::time::sleep(self.config.delay) => {}
        }
        tracing::info!("listeners closing; draining requests in flight");
        exit_when_drained(self.config.drain, Duration::ZERO);
        ShutdownSignal::GracefulTerminate
    }
}

/// pingora waits out its whole grace period; ferry exits as soon as the last client
/// connection has closed. Exiting releases the L4 program links with the process's file
/// descriptors, as a normal stop does; the pinned maps stay, as they always do.
fn exit_when_drained(timeout: Duration, listeners_close_after: Duration) {
    std::thread::spawn(move || {
        // Give pingora a moment to close the listeners and tell idle connections to go.
        std::thread::sleep(listeners_close_after + Duration::from_millis(200));
        let started = Instant::now();
        while started.elapsed() < timeout {
            if telemetry::open_connections() <= 0 {
                tracing::info!(after = ?started.elapsed(), "drained: no client connection left");
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}
