//! Policy: `.rules` files checked against the event schema, compiled, and evaluated on
//! every event, with sequence state and hot reload.
//!
//! - [`Policy`] is one loaded rule set with its sequence state:
//!   [`Policy::decide`] for requests, [`Policy::on_result`] for results (captures),
//!   [`Policy::observe`] for other events (`until` conditions), [`Policy::replay`] to
//!   rebuild state from the log without effects.
//! - [`PolicyHandle`] holds the current policy and swaps it atomically on
//!   [`PolicyHandle::reload`], keeping the last good one when the new files do not
//!   check, and carrying sequence state over.
//!
//! Fail closed: an evaluation error yields `block` with a reason naming it.

pub mod backfill;
mod context;
pub mod fields;
mod inline;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use context::{EventContext, parse_addr};
pub use fields::EventSchema;
pub use gatehouse_dsl::{
    Alert, Approval, CaptureRequest, Diagnostic, Effect, Eviction, Explanation, Limits, RuleSet,
    Severity, Sources, Verdict,
};
pub use inline::{StepFailure, TestOutcome, run_tests};

use gatehouse_dsl::{LoadError, LoadOptions, SequenceState};
use gatehouse_events::payload::{self, AlertRaised, DecisionMade, Payload, ResultStatus};
use gatehouse_events::{Event, EventId};

/// Loading or reloading failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files do not check; every diagnostic is included.
    #[error(transparent)]
    Invalid(#[from] LoadError),
}

impl PolicyError {
    /// Renders every diagnostic (or the I/O error) for humans, without colours.
    pub fn render(&self, width: usize) -> String {
        match self {
            PolicyError::Read { .. } => format!("{self}\n"),
            PolicyError::Invalid(e) => e
                .diagnostics
                .iter()
                .map(|d| d.render(&e.sources, width))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Options of a policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyOptions {
    /// Checker and rule set options (the default when nothing allows is deny).
    pub load: LoadOptions,
    /// Bounds of the sequence state.
    pub limits: Limits,
}

/// Reads `.rules` files into a [`Sources`] set.
pub fn read_sources(paths: &[PathBuf]) -> Result<Sources, PolicyError> {
    let mut sources = Sources::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        sources.add(path.display().to_string(), text);
    }
    Ok(sources)
}

/// One loaded rule set with its sequence state.
#[derive(Debug)]
pub struct Policy {
    rules: Arc<RuleSet>,
    version: String,
    /// `None` once retired by a reload (callers then use the new policy).
    state: Mutex<Option<SequenceState>>,
    /// Some completed sequence waits to learn whether its completing request ran
    /// (results then take the sequence lock).
    completions_pending: AtomicBool,
}

impl Policy {
    /// Loads, checks and compiles `.rules` files.
    pub fn load(paths: &[PathBuf], options: PolicyOptions) -> Result<Self, PolicyError> {
        Self::from_sources(read_sources(paths)?, options)
    }

    /// Checks and compiles in-memory sources.
    pub fn from_sources(sources: Sources, options: PolicyOptions) -> Result<Self, PolicyError> {
        let version = version_of(&sources);
        let rules = gatehouse_dsl::load(sources, &EventSchema, options.load)?;
        Ok(Self {
            rules: Arc::new(rules),
            version,
            state: Mutex::new(Some(SequenceState::new(options.limits))),
            completions_pending: AtomicBool::new(false),
        })
    }

    /// Content hash of the source files (`DecisionMade::policy_version`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The compiled rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Warnings of the check (expired exceptions, unused definitions).
    pub fn warnings(&self) -> &[Diagnostic] {
        self.rules.warnings()
    }

    fn lock(&self) -> MutexGuard<'_, Option<SequenceState>> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than losing it: keep going with what is there.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on a `request_observed` event and applies it to the sequence state at
    /// once (rule tests, backfill: no log in between). `client_ip` is the session's
    /// client address when the caller knows it. A policy retired by a reload still
    /// decides, without sequences; use [`PolicyHandle::judge_batch`] to always get the
    /// current one.
    pub fn decide(&self, event: &Event, client_ip: Option<IpAddr>) -> Verdict {
        match self
            .try_judge_batch(&[event], client_ip)
            .and_then(|mut v| v.pop())
        {
            Some((verdict, touches)) => {
                if touches {
                    self.replay(event);
                }
                verdict
            }
            None => self.stateless(event, client_ip),
        }
    }

    /// The rules alone, no sequence state (a policy retired by a reload).
    fn stateless(&self, event: &Event, client_ip: Option<IpAddr>) -> Verdict {
        let mut v = Verdict::default();
        let ctx = EventContext::new(event).with_client_ip(client_ip);
        self.rules.evaluate_stateless_into(&ctx, &mut v);
        v
    }

    /// Judges the `request_observed` events of one batch, in order, against the
    /// sequence state without changing it (ADR 0024): each verdict, and whether
    /// applying the request ([`Policy::replay`], once its events are committed) will
    /// change the state. `None` once this policy is retired by a reload.
    fn try_judge_batch(
        &self,
        events: &[&Event],
        client_ip: Option<IpAddr>,
    ) -> Option<Vec<(Verdict, bool)>> {
        let ctxs: Vec<EventContext<'_>> = events
            .iter()
            .map(|e| EventContext::new(e).with_client_ip(client_ip))
            .collect();
        let guard = self.lock();
        let state = guard.as_ref()?;
        Some(self.rules.judge_batch(&ctxs, state))
    }

    /// The sequence-state keys a request reads and may change (callers serialize
    /// judge, commit and apply of requests that share one).
    pub fn keys(&self, event: &Event) -> Vec<String> {
        self.rules.keys(&EventContext::new(event))
    }

    /// Feeds a `result_observed` event into sequences: its captures, and whether the
    /// request ran — a request that completed a sequence uses the partial match up
    /// only when it ran to success; refused or failed, the chain stays armed for a
    /// retry. Returns how many
    /// captures took values.
    pub fn on_result(&self, event: &Event) -> usize {
        let Payload::ResultObserved(r) = &event.payload else {
            return 0;
        };
        let Some(request) = r.request else {
            return 0;
        };
        // Most results capture nothing and follow no completion: do not take the
        // sequence lock for them.
        if r.captures.is_empty() && !self.completions_pending.load(Ordering::Relaxed) {
            return 0;
        }
        let ctx = EventContext::new(event);
        let mut guard = self.lock();
        let Some(state) = guard.as_mut() else {
            return 0;
        };
        let request = request.as_uuid().as_u128();
        let stored = r
            .captures
            .iter()
            .map(|c| {
                self.rules
                    .on_result_keyed(&ctx, state, request, &c.name, &c.values, &c.hosts)
            })
            .sum();
        if state.pending_completions() > 0 {
            // Only a request that completed counts as run: refused, or failed upstream
            // (an agent could make a first attempt fail on purpose), the chain stays
            // armed and the retry completes it again.
            let ran = matches!(r.status, ResultStatus::Ok);
            self.rules.on_outcome(&ctx, state, request, ran);
        }
        self.completions_pending
            .store(state.pending_completions() > 0, Ordering::Relaxed);
        stored
    }

    /// Feeds any other event (session closed, credential revoked, approval decided):
    /// applies `until` conditions.
    pub fn observe(&self, event: &Event) -> Vec<Eviction> {
        let ctx = EventContext::new(event);
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(state) => self.rules.observe(&ctx, state),
            None => Vec::new(),
        }
    }

    /// Rebuilds state from one logged event, without effects: requests advance
    /// sequences, results fill captures, other events apply `until`.
    pub fn replay(&self, event: &Event) -> Vec<Eviction> {
        match &event.payload {
            Payload::RequestObserved(_) => {
                let ctx = EventContext::new(event);
                let mut guard = self.lock();
                match guard.as_mut() {
                    Some(state) => {
                        let ev = self.rules.replay(&ctx, state);
                        self.completions_pending
                            .store(state.pending_completions() > 0, Ordering::Relaxed);
                        ev
                    }
                    None => Vec::new(),
                }
            }
            Payload::ResultObserved(_) => {
                self.on_result(event);
                Vec::new()
            }
            Payload::DecisionMade(_) | Payload::AlertRaised(_) | Payload::SessionData(_) => {
                Vec::new()
            }
            _ => self.observe(event),
        }
    }

    /// Which rules and stages match an event, and why (no state is changed).
    pub fn explain(&self, event: &Event) -> Vec<Explanation> {
        let ctx = EventContext::new(event);
        let guard = self.lock();
        self.rules.explain(&ctx, guard.as_ref())
    }

    /// Number of live partial matches.
    pub fn live_partials(&self) -> usize {
        self.lock().as_ref().map_or(0, SequenceState::live_partials)
    }

    fn take_state(&self) -> Option<SequenceState> {
        self.lock().take()
    }

    fn with_state(self, state: SequenceState) -> Self {
        self.completions_pending
            .store(state.pending_completions() > 0, Ordering::Relaxed);
        *self.lock() = Some(state);
        self
    }
}

fn version_of(sources: &Sources) -> String {
    let mut h = blake3::Hasher::new();
    for (_, src) in sources.iter() {
        h.update(src.name.as_bytes());
        h.update(&[0]);
        h.update(src.text.as_bytes());
        h.update(&[0]);
    }
    h.finalize()
        .to_hex()
        .as_str()
        .get(..16)
        .unwrap_or("")
        .to_owned()
}

/// The current policy, swapped atomically on reload.
#[derive(Debug)]
pub struct PolicyHandle {
    current: RwLock<Arc<Policy>>,
    options: PolicyOptions,
}

/// What a successful reload did.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// Version of the new policy.
    pub version: String,
    /// Warnings of the new policy, rendered.
    pub warnings: Vec<String>,
    /// Partial matches carried over.
    pub live_partials: usize,
}

impl PolicyHandle {
    /// Wraps a loaded policy.
    pub fn new(policy: Policy, options: PolicyOptions) -> Self {
        Self {
            current: RwLock::new(Arc::new(policy)),
            options,
        }
    }

    /// Loads files into a new handle.
    pub fn load(paths: &[PathBuf], options: PolicyOptions) -> Result<Self, PolicyError> {
        Ok(Self::new(Policy::load(paths, options)?, options))
    }

    /// The current policy.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Judges requests with the current policy without changing its state (retrying
    /// if a reload retired it meanwhile), in order, each seeing what the earlier ones
    /// will change (the statements of one query string): each verdict, whether
    /// applying the request will change the sequence state, and the policy that
    /// judged. Apply with [`PolicyHandle::replay`] once the events are committed.
    pub fn judge_batch(
        &self,
        events: &[&Event],
        client_ip: Option<IpAddr>,
    ) -> (Vec<(Verdict, bool)>, Arc<Policy>) {
        for _ in 0..4 {
            let p = self.current();
            if let Some(v) = p.try_judge_batch(events, client_ip) {
                return (v, p);
            }
        }
        let p = self.current();
        let v = events
            .iter()
            .map(|e| (p.stateless(e, client_ip), false))
            .collect();
        (v, p)
    }

    /// Judges a request and applies it at once (no log in between: rule tests and
    /// tools; the engine judges, commits, then applies).
    pub fn decide(&self, event: &Event, client_ip: Option<IpAddr>) -> (Verdict, Arc<Policy>) {
        let (mut judged, p) = self.judge_batch(&[event], client_ip);
        let (verdict, touches) = judged.pop().unwrap_or_default();
        if touches {
            self.replay(event);
        }
        (verdict, p)
    }

    /// Whether a request could advance a sequence once stages matched on other
    /// gateways are folded (cluster mode, ADR 0025).
    pub fn may_advance(&self, event: &Event) -> bool {
        self.current().rules.may_advance(&EventContext::new(event))
    }

    /// Whether every sequence is keyed by identity (among others): then the state a
    /// request reads depends only on events of its own identity, which the cluster's
    /// topic keeps on one partition (ADR 0025).
    pub fn sequences_keyed_by_identity(&self) -> bool {
        self.current()
            .rules
            .sequences_keyed_by(gatehouse_dsl::FieldId(fields::id::IDENTITY))
    }

    /// The sequence-state keys of a request under the current policy.
    pub fn keys(&self, event: &Event) -> Vec<String> {
        self.current().keys(event)
    }

    /// Feeds result captures into the current policy's sequences.
    pub fn on_result(&self, event: &Event) -> usize {
        self.current().on_result(event)
    }

    /// Feeds a non-request event into the current policy's sequences.
    pub fn observe(&self, event: &Event) -> Vec<Eviction> {
        self.current().observe(event)
    }

    /// Rebuilds state from a logged event.
    pub fn replay(&self, event: &Event) -> Vec<Eviction> {
        self.current().replay(event)
    }

    /// Loads and checks `paths`; on success swaps the policy in atomically, carrying
    /// sequence state over (partial matches of unchanged sequences survive). On
    /// failure nothing changes and the diagnostics are returned.
    pub fn reload(&self, paths: &[PathBuf]) -> Result<Reloaded, PolicyError> {
        let next = Policy::load(paths, self.options)?;
        self.install(next)
    }

    /// Like [`PolicyHandle::reload`] with in-memory sources.
    pub fn reload_sources(&self, sources: Sources) -> Result<Reloaded, PolicyError> {
        let next = Policy::from_sources(sources, self.options)?;
        self.install(next)
    }

    fn install(&self, next: Policy) -> Result<Reloaded, PolicyError> {
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        let state = slot
            .take_state()
            .unwrap_or_else(|| SequenceState::new(self.options.limits));
        let next = Arc::new(next.with_state(state));
        // Rebind now so the report counts what survived.
        let live = {
            let mut g = next.lock();
            if let Some(st) = g.as_mut() {
                next.rules.adopt(st);
            }
            g.as_ref().map_or(0, SequenceState::live_partials)
        };
        let warnings = next
            .warnings()
            .iter()
            .map(|d| d.render(next.rules.sources(), 100))
            .collect();
        let version = next.version.clone();
        *slot = next;
        Ok(Reloaded {
            version,
            warnings,
            live_partials: live,
        })
    }
}

/// The `decision_made` payload for a verdict on `request`.
pub fn decision_made(verdict: &Verdict, request: EventId, policy_version: &str) -> DecisionMade {
    DecisionMade {
        request: Some(request),
        effect: effect_to_event(verdict.effect),
        rules: verdict.matched.iter().map(|m| m.name.to_string()).collect(),
        decided_by: verdict
            .matched
            .iter()
            .filter(|m| m.effect == Some(verdict.effect))
            .map(|m| m.name.to_string())
            .collect(),
        reason: verdict.reason.clone(),
        approval_id: None,
        default_applied: verdict.default_applied,
        row_limit: verdict.row_limit,
        policy_version: Some(policy_version.to_owned()),
    }
}

/// The `alert_raised` payloads of a verdict on `request`.
pub fn alerts_raised(verdict: &Verdict, request: EventId) -> Vec<AlertRaised> {
    verdict
        .alerts
        .iter()
        .map(|a| AlertRaised {
            rule: a.rule.to_string(),
            sequence: a.sequence,
            message: a.message.clone(),
            severity: severity_to_event(a.severity),
            tags: a.tags.to_vec(),
            effect: Some(effect_to_event(verdict.effect)),
            request: Some(request),
            related_events: if a.related.is_empty() {
                vec![request]
            } else {
                a.related.iter().map(|r| EventId::from_u128(*r)).collect()
            },
            chain: Vec::new(),
        })
        .collect()
}

/// DSL effect -> event effect.
pub fn effect_to_event(e: Effect) -> payload::Effect {
    match e {
        Effect::Allow => payload::Effect::Allow,
        Effect::Mask => payload::Effect::Mask,
        Effect::RequireApproval => payload::Effect::RequireApproval,
        Effect::Block => payload::Effect::Block,
    }
}

/// DSL severity -> event severity (same OCSF ids).
pub fn severity_to_event(s: Severity) -> payload::Severity {
    match s {
        Severity::Informational => payload::Severity::Informational,
        Severity::Low => payload::Severity::Low,
        Severity::Medium => payload::Severity::Medium,
        Severity::High => payload::Severity::High,
        Severity::Critical => payload::Severity::Critical,
    }
}

/// True for `.rules` files.
pub fn is_rules_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rules")
}
