//! DNS for `type: ExternalName` Services: names resolved when requests need them, cached for a
//! short time so a busy route does not ask the resolver per request.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a resolved name is reused. The system resolver gives no TTL; 5 s bounds how long
/// a DNS change goes unnoticed.
const TTL: Duration = Duration::from_secs(5);

/// Resolved addresses by name and port, with the time they were resolved.
type Cache = HashMap<(Arc<str>, u16), (Instant, Arc<[SocketAddr]>)>;

#[derive(Debug, Default)]
pub(crate) struct Resolver {
    cache: Mutex<Cache>,
}

impl Resolver {
    /// The addresses of `host:port`, from the cache while fresh.
    pub(crate) async fn resolve(
        &self,
        host: &Arc<str>,
        port: u16,
    ) -> io::Result<Arc<[SocketAddr]>> {
        let key = (host.clone(), port);
        if let Some((at, addrs)) = self.lock().get(&key)
            && at.elapsed() < TTL
        {
            return Ok(addrs.clone());
        }
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((&**host, port)).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no address"),
            ));
        }
        let mut cache = self.lock();
        // Names that left the snapshot would otherwise stay forever.
        cache.retain(|_, (at, _)| at.elapsed() < TTL);
        cache.insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
