//! One Gatehouse session per agent token (and target), shared by every connection
//! that presents it.
//!
//! kubectl opens several connections per command (discovery in parallel, one per
//! watch), so a session per connection would split one agent's work into many
//! sessions. The token is verified once; later requests with the same token reuse the
//! session until it is idle for `idle` (then `session_closed` reason `idle`), the
//! credential expires or is revoked (the engine closes the session; the next request
//! verifies the token again and is refused), or the gateway stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_core::engine::{Engine, EngineError, Session, SessionInfo};
use gatehouse_core::identity::AuthError;
use gatehouse_events::Protocol;
use tokio::sync::OnceCell;

use crate::upstream::Upstream;

/// Session key: a digest of the token and the target asked for, so the map never
/// holds bearer tokens.
type Key = [u8; 32];

fn key(token: &str, requested: Option<&str>) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(requested.unwrap_or("").as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A live session and the upstream it reaches.
pub(crate) struct Live {
    /// The engine session.
    pub session: Arc<Session>,
    /// The target's upstream.
    pub upstream: Arc<Upstream>,
    active: AtomicUsize,
    last_used: Mutex<Instant>,
}

impl Live {
    fn touch(&self) -> MutexGuard<'_, Instant> {
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a request in flight until the guard drops (idle sessions are closed only
    /// when nothing is in flight: a long watch keeps its session).
    pub fn active(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }
}

/// A request in flight.
pub(crate) struct Active(Arc<Live>);

impl std::ops::Deref for Active {
    type Target = Arc<Live>;
    fn deref(&self) -> &Arc<Live> {
        &self.0
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        *self.0.touch() = Instant::now();
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why no session could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The credential was refused (already recorded by the engine).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The session could not be recorded.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The token's target has no upstream in this proxy.
    #[error("target `{0}` is not served by the Kubernetes proxy")]
    NoUpstream(String),
}

#[derive(Default)]
struct Slot(OnceCell<Arc<Live>>);

/// The session table.
pub(crate) struct Sessions {
    engine: Arc<Engine>,
    upstreams: HashMap<String, Arc<Upstream>>,
    idle: Duration,
    map: Mutex<HashMap<Key, Arc<Slot>>>,
}

impl Sessions {
    pub fn new(
        engine: Arc<Engine>,
        upstreams: HashMap<String, Arc<Upstream>>,
        idle: Duration,
    ) -> Self {
        Self {
            engine,
            upstreams,
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session for `token`, verifying it and opening a session on first use. The
    /// returned guard marks a request in flight (taken under the table lock, so the
    /// reaper cannot close a session a request just picked up).
    pub async fn get(
        &self,
        token: &str,
        requested: Option<&str>,
        client_addr: SocketAddr,
        user_agent: Option<&str>,
    ) -> Result<Active, SessionError> {
        let k = key(token, requested);
        loop {
            let slot = {
                let mut map = self.lock();
                let slot = map.entry(k).or_default().clone();
                if let Some(live) = slot.0.get()
                    && !live.session.is_closed()
                {
                    return Ok(live.active());
                }
                slot
            };
            if let Some(live) = slot.0.get() {
                // Revoked or expired: record the close, then verify the token again.
                self.remove(&k, &slot);
                let reason = live.session.closed().await;
                self.engine.close_session(&live.session, &reason).await;
                continue;
            }
            let opened = slot
                .0
                .get_or_try_init(|| self.open(token, requested, client_addr, user_agent))
                .await;
            match opened {
                // Loop once more to take the guard under the lock.
                Ok(_) => continue,
                Err(e) => {
                    self.remove(&k, &slot);
                    return Err(e);
                }
            }
        }
    }

    fn remove(&self, k: &Key, slot: &Arc<Slot>) {
        let mut map = self.lock();
        if map.get(k).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(k);
        }
    }

    async fn open(
        &self,
        token: &str,
        requested: Option<&str>,
        client_addr: SocketAddr,
        user_agent: Option<&str>,
    ) -> Result<Arc<Live>, SessionError> {
        let principal = self
            .engine
            .authenticate(
                token,
                Protocol::Kubernetes,
                requested,
                Some(client_addr),
                None,
            )
            .await?;
        let upstream = self
            .upstreams
            .get(&principal.target)
            .cloned()
            .ok_or_else(|| SessionError::NoUpstream(principal.target.clone()))?;
        let info = SessionInfo {
            client_addr: Some(client_addr),
            login: None,
            auth_method: Some("bearer".into()),
            upstream_host: Some(upstream.host().to_owned()),
            client_application: user_agent.map(|u| u.chars().take(256).collect()),
        };
        let session = self.engine.open_session(principal, info).await?;
        Ok(Arc::new(Live {
            session,
            upstream,
            active: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// Closes sessions idle for longer than the idle timeout and sessions the engine
    /// closed (revocation, expiry).
    pub async fn reap(&self) {
        let mut closing = Vec::new();
        {
            let mut map = self.lock();
            map.retain(|_, slot| {
                let Some(live) = slot.0.get() else {
                    return true;
                };
                let idle =
                    live.active.load(Ordering::Relaxed) == 0 && live.touch().elapsed() >= self.idle;
                if idle || live.session.is_closed() {
                    closing.push((live.clone(), idle));
                    false
                } else {
                    true
                }
            });
        }
        for (live, idle) in closing {
            let reason = if live.session.is_closed() {
                live.session.closed().await
            } else if idle {
                "idle".to_owned()
            } else {
                "client_closed".to_owned()
            };
            self.engine.close_session(&live.session, &reason).await;
        }
    }

    /// Closes every session (gateway shutdown).
    pub async fn close_all(&self, reason: &str) {
        let all: Vec<Arc<Slot>> = self.lock().drain().map(|(_, s)| s).collect();
        for slot in all {
            if let Some(live) = slot.0.get() {
                self.engine.close_session(&live.session, reason).await;
            }
        }
    }

    /// Runs the reaper until the task is dropped.
    pub async fn run_reaper(self: Arc<Self>) {
        let every = (self.idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            tokio::time::sleep(every).await;
            self.reap().await;
        }
    }
}
