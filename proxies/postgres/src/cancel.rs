//! Cancel keys: clients get a key the gateway made up; a `CancelRequest` with it is
//! forwarded to the upstream backend of that session, with the upstream's own key, and
//! cancels a statement the session holds for approval (it never reached the upstream).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::ClientConfig;

/// Where a client's cancel key leads.
#[derive(Clone)]
pub struct CancelTarget {
    /// Upstream `host:port`.
    pub upstream: String,
    /// TLS to reach it.
    pub tls: Option<Arc<ClientConfig>>,
    /// The upstream backend's key.
    pub key: (i32, i32),
    /// Counts the session's cancel requests: its relay withdraws a held statement
    /// when this changes.
    pub cancelled: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Live cancel keys.
#[derive(Default)]
pub struct CancelKeys {
    map: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

fn random_i32() -> i32 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    i32::from_be_bytes(b)
}

impl CancelKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, i32), CancelTarget>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session; returns the key to give its client.
    pub fn register(&self, target: CancelTarget) -> (i32, i32) {
        let mut map = self.lock();
        loop {
            let key = (random_i32() & 0x7fff_ffff, random_i32());
            if key.0 != 0 && !map.contains_key(&key) {
                map.insert(key, target);
                return key;
            }
        }
    }

    /// Forgets a session's key.
    pub fn remove(&self, key: (i32, i32)) {
        self.lock().remove(&key);
    }

    /// The upstream to cancel for a client key.
    pub fn get(&self, key: (i32, i32)) -> Option<CancelTarget> {
        self.lock().get(&key).cloned()
    }
}
