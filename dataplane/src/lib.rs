//! ferry's data plane: everything that moves bytes.
//!
//! - [`state::Router`] holds the snapshot being served and swaps it atomically;
//! - [`l7`] is the HTTP proxy on pingora that routes by it;
//! - [`l4`] programs Services into the kernel (eBPF, through aya);
//! - [`admin`] serves health, readiness and metrics; [`telemetry`] defines the metrics;
//! - [`backend`] is a small HTTP backend for the demo, tests and benchmarks.
//!
//! It knows nothing of Kubernetes: it consumes [`ferry_model::Snapshot`]s.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod config;
pub mod l4;
pub mod l7;
pub mod state;
pub mod telemetry;

pub use config::ProxyConfig;
pub use state::{Router, State};
