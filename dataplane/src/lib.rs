//! ferry's data plane: everything that moves bytes.
//!
//! - [`state::Router`] holds the snapshot being served and swaps it atomically;
//! - [`l7`] is the HTTP proxy on pingora that routes by it;
//! - [`admin`] serves health, readiness and metrics; [`telemetry`] defines the metrics;
//! - [`backend`] is a small HTTP backend for the demo, tests and benchmarks.
//!
//! It knows nothing of Kubernetes: it consumes [`ferry_model::Snapshot`]s.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod config;
pub mod l7;
pub mod state;
pub mod telemetry;

pub use config::ProxyConfig;
pub use state::{Router, State};
