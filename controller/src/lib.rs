//! ferry's controller: Kubernetes objects in, [`ferry_model::Snapshot`]s out.
//!
//! ```text
//!  source ───────────────▶ Index ─────────────────▶ translate ──▶ Snapshot ──▶ Publisher ──▶ SnapshotSink
//!  (manifests folder;       one entry per object,     pure:          (model)      metrics,      (the data
//!   later: kube watches)    validated on apply        no I/O                      problems       plane)
//!
//!  Ingress ──┬─ class? ── IngressClass (controller, default-class annotation)
//!            ├─ rules ── host ─ paths ─┐
//!            └─ defaultBackend ────────┴─ backend ── Service ─ port ─┬─ EndpointSlices (by service-name label)
//!                                                                    └─ Endpoints (only when no slice exists)
//! ```
//!
//! Every source fills the same [`index::Index`] and goes through the same [`translate`]: the
//! manifests mode and the cluster mode share every line of translation. This crate never
//! touches a socket of the data path.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod index;
pub mod manifests;
pub mod object;
pub mod publish;
pub mod translate;

pub use config::{CONTROLLER_NAME, ControllerConfig};
