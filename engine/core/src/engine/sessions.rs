//! Live sessions: who is connected, and closing them on revocation or expiry.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, EventBuilder};
use serde::Serialize;
use tokio::sync::watch;

use crate::identity::Principal;

/// What a proxy knows about a new session.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    /// Client address.
    pub client_addr: Option<SocketAddr>,
    /// Login name presented.
    pub login: Option<String>,
    /// Authentication method used on the wire.
    pub auth_method: Option<String>,
    /// Upstream host connected to.
    pub upstream_host: Option<String>,
    /// Client application (Postgres `application_name`, SSH client version).
    pub client_application: Option<String>,
}

/// A live session.
pub struct Session {
    /// Session id (recorded in every event of the session).
    pub id: String,
    /// Who, and which target.
    pub principal: Principal,
    /// Session details.
    pub info: SessionInfo,
    opened: Instant,
    opened_at: DateTime<Utc>,
    closed: watch::Receiver<Option<String>>,
    /// The requester's stated reason, recorded on its requests until changed.
    reason: std::sync::RwLock<Option<String>>,
}

/// Longest stated reason kept (longer ones are cut at a character boundary).
pub const MAX_REASON: usize = 512;

impl Session {
    /// Sets (or with an empty text, clears) the reason the requester states for its
    /// next requests. Control characters are replaced; long texts are cut.
    pub fn set_reason(&self, reason: &str) {
        let mut r: String = reason
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if r.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            r.truncate(end);
        }
        *self
            .reason
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (!r.is_empty()).then_some(r);
    }

    /// The reason the requester stated, if any.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An event builder with this session's envelope.
    pub fn event(&self, gateway_id: &str, payload: impl Into<Payload>) -> EventBuilder {
        Event::for_session(
            gateway_id,
            &self.id,
            &self.principal.identity,
            &self.principal.target,
            self.principal.protocol,
            payload,
        )
    }

    /// Time since the session opened.
    pub fn elapsed(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Microseconds since the session opened (recording timestamps).
    pub fn elapsed_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    /// The client IP, for `client.ip` rules.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.info.client_addr.map(|a| a.ip())
    }

    /// Resolves with the reason when the gateway closes this session (credential
    /// revoked or expired) or the session ends. Proxies select on it.
    pub async fn closed(&self) -> String {
        let mut rx = self.closed.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_default(),
            Err(_) => "gateway shutting down".into(),
        }
    }

    /// True once the gateway has closed the session.
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }
}

/// A live session, as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Identity.
    pub identity: String,
    /// Target.
    pub target: String,
    /// Protocol.
    pub protocol: String,
    /// Credential id.
    pub credential_id: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When its credential expires.
    pub expires_at: DateTime<Utc>,
}

struct Live {
    view: SessionView,
    close: watch::Sender<Option<String>>,
}

#[derive(Default)]
pub(super) struct Registry {
    live: Mutex<HashMap<String, Live>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn open(&self, id: String, principal: Principal, info: SessionInfo) -> Arc<Session> {
        let (tx, rx) = watch::channel(None);
        let view = SessionView {
            id: id.clone(),
            identity: principal.identity.name.clone(),
            target: principal.target.clone(),
            protocol: principal.protocol.as_str().into(),
            credential_id: principal.identity.credential_id.clone(),
            client_addr: info.client_addr.map(|a| a.to_string()),
            opened_at: Utc::now(),
            expires_at: principal.expires_at,
        };
        // Close the session when its credential expires.
        let expires_in = (principal.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let expiry = tx.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(expires_in) => { expiry.send_if_modified(|v| { if v.is_none() { *v = Some("credential expired".into()); true } else { false } }); }
                    () = expiry.closed() => {}
                }
            });
        }
        self.lock().insert(
            id.clone(),
            Live {
                view: view.clone(),
                close: tx,
            },
        );
        Arc::new(Session {
            id,
            principal,
            info,
            opened: Instant::now(),
            opened_at: view.opened_at,
            closed: rx,
            reason: std::sync::RwLock::new(None),
        })
    }

    /// Forgets a session and wakes everything waiting on [`Session::closed`].
    pub(super) fn remove(&self, id: &str, reason: &str) {
        if let Some(live) = self.lock().remove(id) {
            live.close.send_if_modified(|v| {
                if v.is_none() {
                    *v = Some(reason.to_owned());
                    true
                } else {
                    false
                }
            });
        }
    }

    pub(super) fn close_credential(&self, credential_id: &str, reason: &str) -> usize {
        let live = self.lock();
        let mut n = 0;
        for l in live
            .values()
            .filter(|l| l.view.credential_id.as_deref() == Some(credential_id))
        {
            l.close.send_replace(Some(reason.to_owned()));
            n += 1;
        }
        n
    }

    pub(super) fn list(&self) -> Vec<SessionView> {
        let mut v: Vec<_> = self.lock().values().map(|l| l.view.clone()).collect();
        v.sort_by_key(|a| a.opened_at);
        v
    }
}

impl Session {
    /// When the session opened.
    pub fn opened_at(&self) -> DateTime<Utc> {
        self.opened_at
    }
}
