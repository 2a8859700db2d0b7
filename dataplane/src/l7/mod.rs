//! The L7 proxy: routing, balancing and forwarding HTTP on pingora.

pub(crate) mod balance;
mod conn;
mod proxy;
mod resolve;
mod service;
mod tls;

pub use proxy::{FerryProxy, RequestCtx};
pub use service::{HttpService, Https, proxy_service, serve};
pub use tls::{CertResolver, GenerateError, self_signed_certificate};
