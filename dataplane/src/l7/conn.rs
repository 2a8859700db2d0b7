//! Per-connection guards: the connection limit, and the HTTP/1 request-head deadline
//! (slowloris). pingora runs a whole HTTP/1 connection, keep-alive requests included, inside
//! one `process_new`; the proxy's hooks, running in that same task, tell the guard through a
//! task-local when a request head has arrived and when its response has ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::ALPN;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::time::Instant;

use crate::config::Limits;
use crate::telemetry::{ACTIVE_CONNECTIONS, LIMIT_REJECTIONS};

/// How long, after the listeners close on shutdown, keep-alive connections get to see a
/// `Connection: close` response before the idle ones are closed.
pub(crate) const IDLE_CLOSE_DELAY: Duration = Duration::from_secs(2);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where an HTTP/1 connection is: waiting for a request head since a moment, or in a request.
#[derive(Debug)]
struct Phase {
    origin: Instant,
    /// Milliseconds after `origin` since when a head is awaited; `IN_REQUEST` while a request
    /// is being served.
    awaiting_since: AtomicU64,
}

const IN_REQUEST: u64 = u64::MAX;

impl Phase {
    fn new() -> Self {
        Phase {
            origin: Instant::now(),
            awaiting_since: AtomicU64::new(0),
        }
    }

    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        match self.awaiting_since.load(Ordering::Relaxed) {
            IN_REQUEST => None,
            ms => Some(self.origin + Duration::from_millis(ms) + timeout),
        }
    }
}

tokio::task_local! {
    static PHASE: Arc<Phase>;
}

/// The request head has been read (called from the proxy's first hook).
pub(crate) fn request_started() {
    let _ = PHASE.try_with(|p| p.awaiting_since.store(IN_REQUEST, Ordering::Relaxed));
}

/// The response has ended: the next head is awaited from now.
pub(crate) fn request_done() {
    let _ = PHASE.try_with(|p| {
        let ms = p.origin.elapsed().as_millis() as u64;
        p.awaiting_since.store(ms, Ordering::Relaxed);
    });
}

/// Wraps the proxy's app: counts connections in `ferry_http_active_connections`, refuses
/// those beyond the limit, and closes HTTP/1 connections that do not deliver a request head
/// in time.
#[derive(Debug)]
pub struct Guard<A> {
    app: Arc<A>,
    limits: Limits,
    h2c: bool,
    /// Connections open on this service's listeners (the limit is per service; the gauge
    /// sums every service of the process).
    open: AtomicUsize,
}

impl<A> Guard<A> {
    pub(crate) fn new(app: Arc<A>, limits: Limits, h2c: bool) -> Self {
        Guard {
            app,
            limits,
            h2c,
            open: AtomicUsize::new(0),
        }
    }
}

/// One open connection, counted while it lives.
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    /// Counts a new connection, unless `max` are open already.
    fn admit(open: &'a AtomicUsize, max: usize) -> Option<Self> {
        open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        ACTIVE_CONNECTIONS.inc();
        Some(Open(open))
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        ACTIVE_CONNECTIONS.dec();
    }
}

impl<A> Guard<A> {
    /// Whether the connection speaks HTTP/2 (ALPN, or the h2c preface), as pingora decides.
    async fn is_h2(&self, stream: &mut Stream) -> bool {
        if stream.get_ssl_digest().is_some() {
            return matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        }
        if !self.h2c {
            return false;
        }
        let mut buf = [0u8; H2_PREFACE.len()];
        matches!(stream.try_peek(&mut buf).await, Ok(true)) && buf == H2_PREFACE
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guard<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_open) = Open::admit(&self.open, self.limits.max_connections) else {
            LIMIT_REJECTIONS.with_label_values(&["connections"]).inc();
            return None;
        };
        let timeout = self.limits.client_header_timeout;
        // HTTP/2 has its own idle handling (and a stream's head arrives in one frame).
        let h2 = tokio::time::timeout(timeout, self.is_h2(&mut stream)).await;
        match h2 {
            Err(_) => {
                LIMIT_REJECTIONS
                    .with_label_values(&["header_timeout"])
                    .inc();
                return None;
            }
            Ok(true) => return self.app.process_new(stream, shutdown).await,
            Ok(false) => {}
        }
        let phase = Arc::new(Phase::new());
        let work = PHASE.scope(phase.clone(), self.app.process_new(stream, shutdown));
        tokio::pin!(work);
        loop {
            let deadline = phase
                .deadline(timeout)
                .unwrap_or_else(|| Instant::now() + timeout);
            tokio::select! {
                reuse = &mut work => return reuse,
                _ = tokio::time::sleep_until(deadline) => {
                    if phase.deadline(timeout).is_some_and(|d| d <= Instant::now()) {
                        // Dropping the work closes the connection.
                        LIMIT_REJECTIONS.with_label_values(&["header_timeout"]).inc();
                        return None;
                    }
                }
            }
        }
    }

    /// Called once the listeners have closed. pingora's cleanup closes idle keep-alive
    /// connections at once, racing clients that are sending on them that very moment; until
    /// then, each connection's next response carries `Connection: close` and the client
    /// leaves cleanly. So the idle ones are closed only after [`IDLE_CLOSE_DELAY`].
    async fn cleanup(&self) {
        tokio::time::sleep(IDLE_CLOSE_DELAY).await;
        self.app.cleanup().await
    }
}
