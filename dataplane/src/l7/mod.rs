//! The L7 proxy: routing, balancing and forwarding HTTP on pingora.

pub(crate) mod balance;
mod proxy;
mod resolve;
mod service;

pub use proxy::{FerryProxy, RequestCtx};
pub use service::{HttpService, http_service, serve_http};
