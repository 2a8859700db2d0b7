//! The contract between ferry's controller and its data plane.
//!
//! The controller turns Kubernetes objects into a [`Snapshot`]; the data plane serves from the
//! snapshot it was last handed. Everything here is plain, immutable data plus the pure lookups
//! the proxy runs per request ([`RouteTable::lookup`]). This crate must not grow I/O, async, or a
//! dependency on Kubernetes, pingora or aya: it is the seam that lets translation be tested
//! without a proxy and the proxy without Kubernetes. (Certificates are rustls `CertifiedKey`s,
//! parsed once by the controller, so the handshake path does no parsing.)
//!
//! ```text
//!  Snapshot
//!  ├─ routes: RouteTable ── host (exact │ *.wildcard │ any) ──▶ HostRoutes
//!  │                                                            ├─ PathTrie ──▶ Arc<Route>
//!  │                                                            └─ fallback ──▶ Arc<Route>
//!  │          └─ default ──▶ Arc<Route>
//!  ├─ upstreams: [Arc<Upstream>]   (every Route points at one; index = Upstream::index)
//!  ├─ certs: CertStore ── SNI (exact │ *.wildcard │ default) ──▶ Arc<TlsCertificate>
//!  └─ services: ServiceTable ── per Service port: frontends, backends (the L4 path)
//! ```

#![forbid(unsafe_code)]

mod host;
mod path;
mod route;
mod service;
mod snapshot;
mod tls;
mod upstream;

pub use host::{HostError, HostMap, HostMatch, normalize_authority};
#[cfg(feature = "reference")]
#[doc(hidden)]
pub use path::reference_lookup;
pub use path::{PathError, PathMatch, PathTrie, PathType, normalize_path};
pub use route::{DuplicateRoute, HostRoutes, HttpsPolicy, Route, RouteTable, RouteTableBuilder};
pub use service::{L4Backend, L4Service, Protocol, ServiceTable};
pub use snapshot::{Snapshot, SnapshotSink};
pub use tls::{CertStore, TlsCertificate};
pub use upstream::{Endpoint, LoadBalance, ObjectRef, Upstream, UpstreamTarget};
