//! What every channel of one authenticated connection shares: the engine session,
//! the target, the upstream connection (once the login is allowed and connected),
//! and the enforcement of a decision (run, refuse, or hold for approval).

use std::sync::Arc;

use gatehouse_core::engine::{
    Decision, Enforcement, Engine, EngineError, Refusal, RefusalKind, Session,
};
use gatehouse_events::payload::{
    DataDirection, RequestDetail, ResultObserved, ResultStatus, SshRequest,
};
use tokio::sync::watch;

use crate::options::SshTarget;
use crate::record::Recorder;
use crate::upstream::Upstream;

/// State of the connection's upstream.
#[derive(Clone)]
pub enum UpstreamState {
    /// The login decision or the connection is under way.
    Connecting,
    /// The login waits for an approval (message for the user).
    Held(String),
    /// Connected and logged in.
    Ready(Arc<Upstream>),
    /// Refused or unreachable: (message for the user, exit status).
    Failed(String, u32),
}

/// Shared by the channels of one connection.
pub struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The engine session.
    pub session: Arc<Session>,
    /// The target.
    pub target: Arc<SshTarget>,
    /// The target host's keys (`ssh.target.hosts`), resolved when the session opened.
    pub hosts: Vec<String>,
    /// The upstream connection state.
    pub upstream: watch::Receiver<UpstreamState>,
    /// Recording cap per channel direction.
    pub record_bytes: u64,
    /// Basenames of the files this identity's requests on this target wrote (command
    /// lines, SFTP, scp and rsync destinations; judged, whatever became of them),
    /// shared by its connections: a later command that runs one of them runs code the
    /// gateway never saw.
    pub written: WrittenNames,
    /// The target runs `gatehouse-guard` (ADR 0023): the connection's guard socket
    /// and the tokens of its channels.
    pub guard: Option<Arc<crate::guard::GuardHub>>,
}

/// Most identity/target pairs whose written files are remembered.
const MAX_WRITERS: usize = 10_000;

/// Files written, per identity and target, for the life of the proxy (not rebuilt
/// from the log after a restart).
/// Written names of one identity on one target.
pub type WrittenNames = Arc<std::sync::Mutex<Vec<String>>>;

#[derive(Default)]
pub struct Written(std::sync::Mutex<std::collections::HashMap<(String, String), WrittenNames>>);

impl Written {
    /// The list of `identity` on `target`.
    pub fn of(&self, identity: &str, target: &str) -> WrittenNames {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (identity.to_owned(), target.to_owned());
        if !map.contains_key(&key) && map.len() >= MAX_WRITERS {
            // Forget one pair that no connection holds.
            if let Some(k) = map
                .iter()
                .find(|(_, v)| Arc::strong_count(v) == 1)
                .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
        map.entry(key).or_default().clone()
    }
}

/// Most written names remembered per connection (the oldest are forgotten first).
const MAX_WRITTEN: usize = 4096;

/// The outcome of enforcing a decision.
pub enum Verdict {
    /// Forward the request.
    Run(Box<Decision>),
    /// Refused: the message for the user and the exit status.
    Refused(String, u32),
}

impl Ctx {
    /// Remembers files written by a request of this identity on this target.
    pub fn note_written<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        let mut w = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in paths {
            let p = p.trim_end_matches('/');
            let name = crate::shell::basename(p);
            if name.is_empty() || name == "." || name == ".." || w.iter().any(|x| x == p) {
                continue;
            }
            if w.len() >= MAX_WRITTEN {
                w.remove(0);
            }
            w.push(p.to_owned());
        }
    }

    /// The first program or script `c` runs that this identity wrote on this target
    /// earlier (or that the same line writes), as the `ssh.runs_written` field. Scripts
    /// and programs run by a path are compared by file name; a program run by its bare
    /// name only when the file was written into a `bin` directory (one that may be on
    /// `PATH`).
    pub fn runs_written(&self, c: &crate::shell::Classified) -> Option<String> {
        let w = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let written: Vec<&str> = w
            .iter()
            .map(String::as_str)
            .chain(c.writes.iter().map(|p| p.trim_end_matches('/')))
            .collect();
        let by_name = |r: &str| written.iter().any(|x| crate::shell::basename(x) == r);
        let in_bin = |r: &str| {
            written.iter().any(|x| {
                crate::shell::basename(x) == r
                    && x.rsplit_once('/')
                        .is_some_and(|(d, _)| d == "bin" || d.ends_with("/bin"))
            })
        };
        c.scripts
            .iter()
            .chain(&c.paths_run)
            .map(|s| crate::shell::basename(s))
            .find(|r| by_name(r))
            .or_else(|| c.programs.iter().map(String::as_str).find(|r| in_bin(r)))
            .map(|r| format!("`{r}` was written in this session"))
    }

    /// An SSH request with the session's host filled in.
    pub fn request(&self, req: SshRequest) -> RequestDetail {
        RequestDetail::Ssh(SshRequest {
            host: self.target.host.clone(),
            hosts: self.hosts.clone(),
            ..req
        })
    }

    /// Waits for the upstream. `notify` receives the approval message if the login
    /// is held. Errors carry the user message and exit status.
    pub async fn upstream_ready<F, Fut>(
        &self,
        mut notify: F,
    ) -> Result<Arc<Upstream>, (String, u32)>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut rx = self.upstream.clone();
        let mut shown = false;
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                UpstreamState::Ready(u) => return Ok(u),
                UpstreamState::Failed(m, code) => return Err((m, code)),
                UpstreamState::Held(m) if !shown => {
                    shown = true;
                    notify(m).await;
                }
                UpstreamState::Held(_) | UpstreamState::Connecting => {}
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(("gatehouse: the session is closing".into(), crate::EXIT_GATEWAY_ERROR));
                    }
                }
                reason = self.session.closed() => {
                    return Err((format!("gatehouse: session closed: {reason}"), crate::EXIT_GATEWAY_ERROR));
                }
            }
        }
    }

    /// Enforces a decision: allow/mask run; block refuses; require-approval tells the
    /// user (through `notify`) and waits for a reviewer. Engine errors refuse.
    pub async fn enforce<F, Fut>(
        &self,
        decided: Result<Decision, EngineError>,
        mut notify: F,
    ) -> Verdict
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let decision = match decided {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(message = "Decision failed; refusing.", session = %self.session.id, error = %e);
                return Verdict::Refused(
                    format!("gatehouse: {}", Refusal::failed(&e).message),
                    crate::EXIT_GATEWAY_ERROR,
                );
            }
        };
        let refusal = match decision.enforcement() {
            Enforcement::Run => return Verdict::Run(Box::new(decision)),
            Enforcement::Hold { notice, .. } => {
                notify(format!("gatehouse: {notice}")).await;
                match self.engine.await_approval(&self.session, &decision).await {
                    Ok(note) => {
                        notify(format!("gatehouse: {note}")).await;
                        return Verdict::Run(Box::new(decision));
                    }
                    // The session is gone: nobody to tell, nothing more to record.
                    Err(r) if r.kind == RefusalKind::Abandoned => {
                        return Verdict::Refused(
                            format!("gatehouse: {}", r.message),
                            crate::EXIT_REFUSED,
                        );
                    }
                    Err(r) => r,
                }
            }
            Enforcement::Refuse(r) => r,
        };
        let msg = match refusal.kind {
            RefusalKind::Blocked => format!("gatehouse: blocked: {}", refusal.message),
            _ => format!("gatehouse: {}", refusal.message),
        };
        self.refused_result(&decision, &msg).await;
        Verdict::Refused(msg, crate::EXIT_REFUSED)
    }

    async fn refused_result(&self, decision: &Decision, message: &str) {
        let result = ResultObserved {
            request: Some(decision.request),
            status: ResultStatus::Refused,
            code: Some(crate::EXIT_REFUSED.to_string()),
            message: Some(message.to_owned()),
            ..ResultObserved::default()
        };
        if let Err(e) = self.engine.record_result(&self.session, result).await {
            tracing::warn!(message = "Cannot record a refusal.", session = %self.session.id, error = %e);
        }
    }

    /// Records one chunk of channel bytes (under the recorder's cap).
    pub async fn record(&self, recorder: &mut Recorder, data: &[u8]) {
        if let Some(d) = recorder.take(data, self.session.elapsed_us())
            && let Err(e) = self.engine.record_data(&self.session, d).await
        {
            tracing::warn!(message = "Cannot record session data.", session = %self.session.id, error = %e);
        }
    }

    /// A recorder for `channel` and `direction`.
    pub fn recorder(&self, channel: u32, direction: DataDirection) -> Recorder {
        Recorder::new(channel, direction, self.record_bytes)
    }
}
