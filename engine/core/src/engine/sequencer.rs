//! Orders the judgement, commit and application of requests that share a key of the
//! sequence state (ADR 0024).
//!
//! A request is judged against the committed state without changing it; its events
//! are appended; only then is it applied. A second request of the same key judged in
//! between would not see the first one's change, so a request whose application will
//! change the state holds its keys from judgement to application, and every request
//! takes its keys before it is judged (waiting only while such a request is on its
//! way). Requests that change nothing release their keys at once: the common case (a
//! statement no sequence stage names) never waits for another request's append.
//!
//! Keys are hashed onto a fixed set of stripes: two identities on one stripe wait for
//! each other only while one of them has a state-changing request in flight.

use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// Stripes of keys.
const STRIPES: usize = 256;

/// See the module documentation.
pub(crate) struct Sequencer {
    stripes: Vec<Mutex<()>>,
}

impl Default for Sequencer {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

/// Held keys; released when dropped.
pub(crate) struct Held<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Sequencer {
    fn stripe(key: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0)
    }

    /// Takes the stripes of `keys`, in stripe order (no two callers wait on each
    /// other in a cycle).
    pub async fn hold(&self, keys: &[String]) -> Held<'_> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| Self::stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            if let Some(m) = self.stripes.get(s) {
                guards.push(m.lock().await);
            }
        }
        Held { _guards: guards }
    }
}
