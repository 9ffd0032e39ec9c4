//! What a target's names are, read from its upstream catalog: relation kinds, view
//! definitions, function bodies ([`Snapshot`]), and the expansion of a classified
//! statement with them ([`reach`]).
//!
//! The catalog is read through a connection the gateway opens itself with the
//! credential it holds for the target, never through an agent's session. One
//! [`Catalog`] per target is shared by its sessions; a reading is reused until it is
//! older than the TTL (DDL done elsewhere) or DDL judged by the gateway invalidates it.
//! Once read, judging a statement costs hash lookups only. When the catalog cannot be
//! read, statements that need it are marked `unresolved` with the reason.

mod load;
mod plpgsql;
mod query;
mod reach;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub use load::Source;
pub use reach::reach;
pub use snapshot::{Function, RelKind, Relation, Snapshot};

/// Time before a failed reading is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The catalog of one target, shared by its sessions.
pub struct Catalog {
    source: Source,
    ttl: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Bumped by every invalidation; a reading started before the last bump is stale.
    generation: AtomicU64,
    /// Generation the current reading was started at.
    read_at: AtomicU64,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("target", &self.source.target.name)
            .finish()
    }
}

impl Catalog {
    /// A catalog read from `source`, trusted for `ttl`.
    pub fn new(source: Source, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            current: RwLock::new(None),
            generation: AtomicU64::new(1),
            read_at: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the current reading (DDL passed through the gateway).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let snap = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let ttl = if snap.error.is_some() {
            RETRY.min(self.ttl)
        } else {
            self.ttl
        };
        let valid = snap.loaded.elapsed() < ttl
            && self.read_at.load(Ordering::Acquire) >= self.generation.load(Ordering::Acquire);
        valid.then_some(snap)
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current reading, read again first when it is stale. While the catalog is
    /// unreadable, the failed reading is returned at once and a new attempt runs in
    /// the background (a connection that hangs must not hold every session).
    pub async fn snapshot(self: &Arc<Self>) -> Arc<Snapshot> {
        if let Some(s) = self.fresh() {
            return s;
        }
        if let Some(current) = self.current()
            && current.error.is_some()
        {
            if let Ok(guard) = self.refresh.try_lock() {
                drop(guard);
                let this = self.clone();
                tokio::spawn(async move {
                    let _one = this.refresh.lock().await;
                    if this.fresh().is_none() {
                        this.reload().await;
                    }
                });
            }
            return current;
        }
        let _one = self.refresh.lock().await;
        if let Some(s) = self.fresh() {
            return s;
        }
        self.reload().await
    }

    /// Reads the catalog and stores the reading (the caller holds `refresh`).
    async fn reload(&self) -> Arc<Snapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        let snap = match self.source.load().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(message = "Cannot read the upstream catalog.", target = %self.source.target.name, %error);
                match self.current() {
                    Some(last) if last.ever_loaded => Snapshot {
                        loaded: Instant::now(),
                        error: Some(error),
                        ..(*last).clone()
                    },
                    _ => Snapshot::unreadable(error),
                }
            }
        };
        let snap = Arc::new(snap);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(snap.clone());
        self.read_at.store(generation, Ordering::Release);
        snap
    }

    /// Reads the catalog again unless `snap` was read after `since` (a name it does
    /// not know may have been created since it was read).
    pub async fn read_since(
        self: &Arc<Self>,
        snap: &Arc<Snapshot>,
        since: Instant,
    ) -> Arc<Snapshot> {
        if snap.loaded >= since {
            return snap.clone();
        }
        {
            let _one = self.refresh.lock().await;
            let current = self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(c) = current
                && c.loaded >= since
            {
                return c;
            }
        }
        self.invalidate();
        Box::pin(self.snapshot()).await
    }
}
