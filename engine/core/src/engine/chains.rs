//! What a reviewer reads about a chain: a summary of every request that started or
//! advanced a sequence (kept, bounded, for the life of the process), joined to the
//! values its result captured. When a sequence completes, its alert and its
//! approval request carry the steps ([`ChainStep`]), so a held pod comes with the
//! query that read the hosts and the SSH login that used one.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;

use gatehouse_events::payload::{ChainStep, K8sRequest, RequestDetail, SshRequestKind};
use gatehouse_events::{Event, EventId, Payload};

/// Most steps remembered (the oldest go first).
const MAX_STEPS: usize = 65_536;
/// Longest command text in a summary.
const MAX_TEXT: usize = 400;
/// Most captured values kept on a step.
const MAX_CAPTURED: usize = 16;
/// Most later commands kept on an SSH login step.
const MAX_THEN_RAN: usize = 8;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct ChainSteps {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u128, ChainStep>,
    order: VecDeque<u128>,
    /// SSH sessions whose login is a remembered step: session id -> the login.
    logins: HashMap<String, u128>,
}

impl ChainSteps {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers the request `event` as a possible chain step.
    pub fn remember(&self, event: &Event) {
        let Some(step) = step_of(event) else {
            return;
        };
        let mut s = self.lock();
        let id = event.id.as_uuid().as_u128();
        let login = matches!(&event.payload, Payload::RequestObserved(r) if matches!(&r.detail, RequestDetail::Ssh(x) if x.kind == SshRequestKind::SessionOpen));
        if login && let Some(session) = &event.session_id {
            s.logins.insert(session.clone(), id);
        }
        if s.by_id.insert(id, step).is_none() {
            s.order.push_back(id);
        }
        while s.order.len() > MAX_STEPS {
            if let Some(old) = s.order.pop_front() {
                s.by_id.remove(&old);
                s.logins.retain(|_, v| *v != old);
            }
        }
    }

    /// Notes an SSH command on the login step of its session, if that login is a
    /// remembered step (the reviewer reads what the hop went on to run).
    pub fn ssh_command(&self, event: &Event) {
        let Payload::RequestObserved(r) = &event.payload else {
            return;
        };
        let RequestDetail::Ssh(x) = &r.detail else {
            return;
        };
        if x.kind == SshRequestKind::SessionOpen {
            return;
        }
        let Some(session) = &event.session_id else {
            return;
        };
        let mut s = self.lock();
        let Some(login) = s.logins.get(session).copied() else {
            return;
        };
        if let Some(step) = s.by_id.get_mut(&login) {
            if step.then_ran.len() < MAX_THEN_RAN {
                step.then_ran.push(cut(&r.command));
            }
            if step.reason.is_none() {
                step.reason.clone_from(&r.reason);
            }
        }
    }

    /// Adds values a request's result captured to its step.
    pub fn captured(&self, request: EventId, values: &[String]) {
        let mut s = self.lock();
        if let Some(step) = s.by_id.get_mut(&request.as_uuid().as_u128()) {
            for v in values {
                if step.captured.len() >= MAX_CAPTURED {
                    break;
                }
                if !step.captured.contains(v) {
                    step.captured.push(v.clone());
                }
            }
        }
    }

    /// The steps of `events`, oldest first; a step not held (the gateway restarted
    /// since) is named by its event only. `uncommitted` are requests not yet
    /// remembered (judged, not yet in the log) that may be among them.
    pub fn steps_with(&self, events: &[EventId], uncommitted: &[Event]) -> Vec<ChainStep> {
        let s = self.lock();
        events
            .iter()
            .map(|e| {
                s.by_id
                    .get(&e.as_uuid().as_u128())
                    .cloned()
                    .or_else(|| {
                        uncommitted
                            .iter()
                            .find(|u| u.id == *e)
                            .and_then(step_of)
                    })
                    .unwrap_or_else(|| ChainStep {
                        event: *e,
                        summary: "(not held in memory: the gateway restarted since; see `gatehouse replay` or the audit)".into(),
                        ..ChainStep::default()
                    })
            })
            .collect()
    }
}

/// The chain step a request event stands for.
pub(crate) fn step_of(event: &Event) -> Option<ChainStep> {
    let Payload::RequestObserved(r) = &event.payload else {
        return None;
    };
    Some(ChainStep {
        event: event.id,
        time: Some(event.time),
        protocol: event
            .protocol
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        target: event.target.clone().unwrap_or_default(),
        summary: summary(&r.command, &r.detail),
        captured: Vec::new(),
        reason: r.reason.clone(),
        then_ran: Vec::new(),
    })
}

/// One line saying what a request does.
pub(crate) fn summary(command: &str, detail: &RequestDetail) -> String {
    match detail {
        RequestDetail::Postgres(_) => cut(command),
        RequestDetail::Ssh(s) => match s.kind {
            SshRequestKind::SessionOpen => format!("SSH login to {}", s.host),
            _ => {
                let mut out = format!("on {}: {}", s.host, cut(command));
                if !s.pivot.is_empty() {
                    let _ = write!(out, " (clients for {})", s.pivot.join(", "));
                }
                out
            }
        },
        RequestDetail::Kubernetes(k) => kubernetes(command, k),
    }
}

fn kubernetes(command: &str, k: &K8sRequest) -> String {
    let Some(p) = &k.pod else {
        return cut(command);
    };
    let mut out = format!(
        "{} {} {}/{}: images [{}]",
        k.verb,
        if p.kind.is_empty() { "Pod" } else { &p.kind },
        k.namespace.as_deref().unwrap_or("-"),
        k.name
            .as_deref()
            .or(p.object_name.as_deref())
            .unwrap_or("(no name)"),
        p.images.join(", ")
    );
    if p.privileged {
        out.push_str(", privileged");
    }
    for (on, what) in [
        (p.host_network, "hostNetwork"),
        (p.host_pid, "hostPID"),
        (p.host_ipc, "hostIPC"),
    ] {
        if on {
            let _ = write!(out, ", {what}");
        }
    }
    if !p.host_paths.is_empty() {
        let _ = write!(out, ", host mounts [{}]", p.host_paths.join(", "));
    }
    if !p.capabilities.is_empty() {
        let _ = write!(out, ", adds [{}]", p.capabilities.join(", "));
    }
    let _ = write!(
        out,
        ", service account {}",
        p.service_account.as_deref().unwrap_or("default")
    );
    if !p.secrets.is_empty() {
        let _ = write!(out, ", secrets [{}]", p.secrets.join(", "));
    }
    out
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}
