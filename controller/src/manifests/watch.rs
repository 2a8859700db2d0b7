//! The manifests source: load the folder, translate, publish; then watch the folder and do it
//! again after each burst of changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ferry_model::SnapshotSink;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::{ManifestError, ParseCache, load_cached};
use crate::config::ControllerConfig;
use crate::index::Index;
use crate::publish::{Outcome, Publisher};
use crate::translate::translate;

/// A folder of manifests feeding a snapshot sink.
#[derive(Debug)]
pub struct ManifestSource {
    dir: PathBuf,
    config: ControllerConfig,
    publisher: Publisher,
    /// The index behind the snapshot being served.
    current: Option<Index>,
    /// Files as last parsed: a change re-parses only the files that changed.
    cache: ParseCache,
}

impl ManifestSource {
    pub fn new(dir: PathBuf, config: ControllerConfig, sink: Arc<dyn SnapshotSink>) -> Self {
        ManifestSource {
            dir,
            config,
            publisher: Publisher::new(sink),
            current: None,
            cache: ParseCache::default(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The index of the snapshot being served, if one was published.
    pub fn current(&self) -> Option<&Index> {
        self.current.as_ref()
    }

    /// Reads the folder and publishes what it holds, unless it is what is already served.
    /// On errors nothing changes; each error is logged and returned.
    pub fn reload(&mut self) -> Result<Outcome, Vec<ManifestError>> {
        let started = Instant::now();
        let loaded = match load_cached(&self.dir, &mut self.cache) {
            Ok(loaded) => loaded,
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "manifests rejected; the last good configuration keeps serving");
                }
                self.publisher.rejected(started);
                return Err(errors);
            }
        };
        for object in &loaded.skipped {
            tracing::debug!(object, "skipped: ferry does not read this kind");
        }
        if self.current.as_ref() == Some(&loaded.index) {
            self.publisher.unchanged(started);
            return Ok(Outcome::Unchanged);
        }
        let translation = translate(&loaded.index, &self.config);
        let generation =
            self.publisher
                .publish(translation.snapshot, &translation.diagnostics, started);
        tracing::info!(
            dir = %self.dir.display(),
            files = loaded.files.len(),
            objects = loaded.index.len(),
            generation,
            "manifests loaded"
        );
        self.current = Some(loaded.index);
        Ok(Outcome::Published(generation))
    }

    /// Watches the folder until `shutdown` turns true, reloading after each burst of changes
    /// (once no change came for `config.debounce`, or after ten times that under a steady
    /// stream of changes).
    pub async fn watch(mut self, mut shutdown: watch::Receiver<bool>) -> notify::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let _ = tx.send(event);
            })?;
        watcher.watch(&self.dir, RecursiveMode::Recursive)?;
        let quiet = self.config.debounce;
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, dir = %self.dir.display(), "watching manifests");
                        continue;
                    }
                    // Reading the files (our own reloads included) is no change.
                    Some(Ok(e)) if matches!(e.kind, EventKind::Access(_)) => continue,
                    Some(Ok(_)) => {}
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + quiet * 10;
            loop {
                let wait =
                    quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                if wait.is_zero() {
                    break;
                }
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            // Errors are logged by reload; the last good snapshot stays.
            let _ = self.reload();
        }
    }
}
