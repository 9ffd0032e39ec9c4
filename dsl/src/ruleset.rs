//! A compiled rule set: rules indexed for fast candidate selection, sequences grouped
//! by key, and the evaluation entry points.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ast::TestDecl;
use crate::diag::Diagnostic;
use crate::eval::{Captured, Env, Tri, eval};
use crate::ir::{Cmp, Derive, FieldRef, Node, Op, Operand, StrSet};
use crate::program::{AlertDef, CaptureSource, EffectDef, Program, SeqDef};
use crate::schema::{Context, FieldId, Value};
use crate::sequence::{Partial, SequenceState};
use crate::span::{Sources, Span};
use crate::time;
use crate::verdict::{Alert, Approval, CaptureRequest, Effect, Eviction, Matched, Verdict};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

static FALSE: Node = Node::Const(false);

/// Options of a rule set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSetOptions {
    /// Effect when no rule allows and no `default` item applies: deny unless set.
    pub default_allow: bool,
}

/// Condition ids by field value.
type Buckets = HashMap<Box<str>, Vec<u32>>;

#[derive(Debug, Default)]
struct Index {
    by_value: Vec<(FieldId, Buckets)>,
    by_presence: Vec<(FieldId, Vec<u32>)>,
    always: Vec<u32>,
}

impl Index {
    /// Ids of the conditions that may be true for this event, sorted, without
    /// duplicates (a superset: each is still evaluated).
    fn candidates<C: Context + ?Sized>(&self, ctx: &C, out: &mut Vec<u32>) {
        out.clear();
        for (field, buckets) in &self.by_value {
            match ctx.get(*field) {
                Value::Str(s) => {
                    if let Some(ids) = buckets.get(s) {
                        out.extend_from_slice(ids);
                    }
                }
                Value::List(l) => {
                    for s in l.iter() {
                        if let Some(ids) = buckets.get(s) {
                            out.extend_from_slice(ids);
                        }
                    }
                }
                _ => {}
            }
        }
        for (field, ids) in &self.by_presence {
            if !matches!(ctx.get(*field), Value::Missing) {
                out.extend_from_slice(ids);
            }
        }
        out.extend_from_slice(&self.always);
        out.sort_unstable();
        out.dedup();
    }
}

/// A checked, compiled policy. Immutable and shareable between threads; the mutable
/// sequence state lives in a separate [`SequenceState`].
#[derive(Debug)]
pub struct RuleSet {
    id: u64,
    program: Program,
    index: Index,
    hashes: Vec<u64>,
    groups: Vec<(Vec<FieldRef>, Vec<u16>)>,
    /// Per group: index over the first stage of each member.
    starts: Vec<Index>,
    options: RuleSetOptions,
    sources: Sources,
    warnings: Vec<Diagnostic>,
}

/// Why a rule did or did not match an event (from [`RuleSet::explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Rule name, or `sequence.stage`.
    pub name: String,
    /// `rule` or `stage`.
    pub kind: &'static str,
    /// Whether it applies (rule: condition true and no exception applied).
    pub matched: bool,
    /// Each top-level condition (the parts joined by `and`) with its value.
    pub conditions: Vec<(String, Tri)>,
    /// Exceptions: name, owner, value of its condition, whether it has expired.
    pub exceptions: Vec<(String, String, Tri, bool)>,
    /// The effect it asks for.
    pub effect: Option<Effect>,
}

/// Field renderer shared by templates and keys.
pub(crate) fn render_field<C: Context + ?Sized>(f: FieldRef, ctx: &C, out: &mut String) {
    let v = ctx.get(f.id);
    match (f.derive, v) {
        (Derive::None, v) => v.render(out),
        (_, Value::Time(t)) => {
            let s = time::seconds_of_day(t);
            let text = match f.derive {
                Derive::Hour => (s / 3600).to_string(),
                Derive::Minute => ((s / 60) % 60).to_string(),
                Derive::OfDay => format!("{:02}:{:02}", s / 3600, (s / 60) % 60),
                Derive::Date => time::format_date(time::day_number(t)),
                _ => time::WEEKDAYS
                    .get(time::weekday(t))
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
            };
            out.push_str(&text);
        }
        _ => {}
    }
}

fn key_for<'c, C: Context + ?Sized>(by: &[FieldRef], ctx: &'c C) -> Option<Cow<'c, str>> {
    if let [single] = by {
        return match ctx.get(single.id) {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Missing => None,
            other => {
                let mut s = String::new();
                other.render(&mut s);
                Some(Cow::Owned(s))
            }
        };
    }
    let mut out = String::new();
    for (i, f) in by.iter().enumerate() {
        let v = ctx.get(f.id);
        if matches!(v, Value::Missing) {
            return None;
        }
        if i > 0 {
            out.push('\u{1f}');
        }
        v.render(&mut out);
    }
    Some(Cow::Owned(out))
}

/// Index keys a condition offers: `field == "x"`, `field in [...]`, `list contains "x"`,
/// `list intersects [...]` at the top level of a conjunction.
fn index_keys(node: &Node, out: &mut Vec<(FieldId, Vec<Box<str>>)>) {
    match node {
        Node::And(children) => {
            for c in children.iter() {
                index_keys(c, out);
            }
        }
        Node::Cmp(c) => {
            if let Some(k) = cmp_index_key(c) {
                out.push(k);
            }
        }
        _ => {}
    }
}

fn plain_field(op: &Operand) -> Option<FieldId> {
    match op {
        Operand::Field(FieldRef {
            id,
            derive: Derive::None,
        }) => Some(*id),
        _ => None,
    }
}

fn cmp_index_key(c: &Cmp) -> Option<(FieldId, Vec<Box<str>>)> {
    let set_items = |s: &StrSet| s.iter().map(Box::from).collect::<Vec<Box<str>>>();
    match (c.op, &c.lhs, &c.rhs) {
        (Op::Eq | Op::Has, l, Operand::Str(s)) => Some((plain_field(l)?, vec![s.clone()])),
        (Op::Eq, Operand::Str(s), r) => Some((plain_field(r)?, vec![s.clone()])),
        (Op::In | Op::Intersects, l, Operand::Set(set)) => Some((plain_field(l)?, set_items(set))),
        _ => None,
    }
}

/// Fields that must be present for a condition to be true (Kleene logic: a comparison
/// with a missing field is unknown, and so is `not` of it).
fn required_fields(node: &Node, out: &mut Vec<FieldId>) {
    match node {
        Node::And(children) => {
            for c in children.iter() {
                required_fields(c, out);
            }
        }
        Node::Or(children) => {
            let mut common: Option<Vec<FieldId>> = None;
            for c in children.iter() {
                let mut mine = Vec::new();
                required_fields(c, &mut mine);
                common = Some(match common {
                    None => mine,
                    Some(prev) => prev.into_iter().filter(|f| mine.contains(f)).collect(),
                });
            }
            out.extend(common.unwrap_or_default());
        }
        Node::Not(inner) if matches!(**inner, Node::Cmp(_) | Node::Field(_)) => {
            required_fields(inner, out);
        }
        Node::Field(f) => out.push(f.id),
        Node::Cmp(c) => {
            for op in [&c.lhs, &c.rhs] {
                if let Operand::Field(f) = op {
                    out.push(f.id);
                }
            }
        }
        Node::Between(ops) => {
            for op in ops.iter() {
                if let Operand::Field(f) = op {
                    out.push(f.id);
                }
            }
        }
        _ => {}
    }
}

impl RuleSet {
    pub(crate) fn new(
        program: Program,
        sources: Sources,
        warnings: Vec<Diagnostic>,
        options: RuleSetOptions,
    ) -> Self {
        let whens: Vec<&Node> = program.rules.iter().map(|r| &r.when).collect();
        let index = build_index(&whens);
        let hashes = program.sequences.iter().map(|s| s.hash).collect();
        let mut groups: Vec<(Vec<FieldRef>, Vec<u16>)> = Vec::new();
        for (i, s) in program.sequences.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            match groups.iter_mut().find(|(by, _)| *by == s.by) {
                Some((_, members)) => members.push(i),
                None => groups.push((s.by.clone(), vec![i])),
            }
        }
        // First stages are indexed like rules: most events start no sequence.
        let starts = groups
            .iter()
            .map(|(_, members)| {
                let firsts: Vec<&Node> = members
                    .iter()
                    .filter_map(|&m| program.sequences.get(usize::from(m)))
                    .map(|s| s.stages.first().map_or(&FALSE, |st| &st.when))
                    .collect();
                build_index(&firsts)
            })
            .collect();
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            program,
            index,
            hashes,
            groups,
            starts,
            options,
            sources,
            warnings,
        }
    }

    /// The source files it was built from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Warnings found while checking (expired exceptions, unused definitions).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Names of the rules, sorted.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.program.rules.iter().map(|r| &*r.name)
    }

    /// Names of the sequences, in source order.
    pub fn sequence_names(&self) -> impl Iterator<Item = &str> {
        self.program.sequences.iter().map(|s| &*s.name)
    }

    /// Where a rule or sequence is defined.
    pub fn span_of(&self, name: &str) -> Option<Span> {
        self.program
            .rules
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| r.span)
            .or_else(|| {
                self.program
                    .sequences
                    .iter()
                    .find(|s| &*s.name == name)
                    .map(|s| s.span)
            })
    }

    /// Inline tests of the policy.
    pub fn tests(&self) -> &[TestDecl] {
        &self.program.tests
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.program.rules.len()
    }

    /// Content hashes of the sequences (partial matches survive a reload for equal
    /// hashes).
    pub fn sequence_hashes(&self) -> &[u64] {
        &self.hashes
    }

    fn now<C: Context + ?Sized>(&self, ctx: &C) -> Option<i64> {
        match self.program.time.map(|f| ctx.get(f.id)) {
            Some(Value::Time(t)) => Some(t),
            _ => None,
        }
    }

    /// Decides on a request: rules, then sequences (the completing step of a chain gets
    /// the sequence's effect before it runs). Allocates only for matches.
    pub fn evaluate<C: Context + ?Sized>(&self, ctx: &C, state: &mut SequenceState) -> Verdict {
        let mut v = Verdict::default();
        self.evaluate_into(ctx, state, &mut v);
        v
    }

    /// Like [`RuleSet::evaluate`], reusing `out`'s buffers.
    pub fn evaluate_into<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
        out: &mut Verdict,
    ) {
        out.clear();
        state.rebind(self.id, &self.hashes);
        let error = Cell::new(None);
        let now = self.now(ctx);
        {
            let armed = |seq: u16, min: u8| self.armed(state, ctx, seq, min, now);
            self.rules_into(ctx, Some(&armed), &error, now, out);
        }
        if !self.program.sequences.is_empty() {
            let mut ev = std::mem::take(&mut out.evictions);
            self.step(ctx, state, now, true, Some(out), &mut ev, &error);
            out.evictions = ev;
        }
        self.finish(ctx, &error, out);
    }

    /// Decides with the rules only (no sequence state: `sequence ... armed` is false).
    pub fn evaluate_stateless_into<C: Context + ?Sized>(&self, ctx: &C, out: &mut Verdict) {
        out.clear();
        let error = Cell::new(None);
        let now = self.now(ctx);
        self.rules_into(ctx, None, &error, now, out);
        self.finish(ctx, &error, out);
    }

    /// Advances sequence state with a request, without deciding (rebuilding state from
    /// the log on restart).
    pub fn replay<C: Context + ?Sized>(&self, ctx: &C, state: &mut SequenceState) -> Vec<Eviction> {
        state.rebind(self.id, &self.hashes);
        let mut ev = Vec::new();
        let error = Cell::new(None);
        let now = self.now(ctx);
        self.step(ctx, state, now, true, None, &mut ev, &error);
        ev
    }

    /// Feeds a non-request event (session closed, credential revoked, approval
    /// decided, ...): applies `until` conditions and windows.
    pub fn observe<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
    ) -> Vec<Eviction> {
        state.rebind(self.id, &self.hashes);
        let mut ev = Vec::new();
        let error = Cell::new(None);
        let now = self.now(ctx);
        self.step(ctx, state, now, false, None, &mut ev, &error);
        ev
    }

    /// Stores values a result returned for a capture request (`name` is the
    /// [`CaptureRequest::name`], or the short capture name). `ctx` is the result event
    /// (it carries the same key fields as its request). Returns how many captures took
    /// the values.
    pub fn on_result<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
        request_ref: u128,
        name: &str,
        values: &[String],
    ) -> usize {
        self.on_result_keyed(ctx, state, request_ref, name, values, &[])
    }

    /// [`on_result`](Self::on_result) with the host keys of the values
    /// (`gatehouse_events::host::value_keys`), kept alongside them in the capture so
    /// that `x in stage.capture` compares hosts as hosts.
    pub fn on_result_keyed<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
        request_ref: u128,
        name: &str,
        values: &[String],
        keys: &[String],
    ) -> usize {
        state.rebind(self.id, &self.hashes);
        let mut stored = 0;
        for (by, members) in &self.groups {
            if let Some(key) = key_for(by, ctx) {
                stored += state.capture_result(
                    &key,
                    members,
                    &self.program.sequences,
                    request_ref,
                    crate::sequence::ResultCapture { name, values, keys },
                );
            }
        }
        stored
    }

    /// What became of request `request_ref` (`ctx` is its result event, which carries
    /// the same key fields): it `ran`, and the partial matches it completed are used
    /// up, or it was refused, and they stay armed for a retry. Returns how many partial
    /// matches it concerned.
    pub fn on_outcome<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
        request_ref: u128,
        ran: bool,
    ) -> usize {
        state.rebind(self.id, &self.hashes);
        let mut n = 0;
        for (by, members) in &self.groups {
            if let Some(key) = key_for(by, ctx) {
                n += state.outcome(&key, members, request_ref, ran);
            }
        }
        n
    }

    /// Binds a state to this rule set now: partial matches of sequences whose hash is
    /// unchanged are kept, the others dropped. (Evaluation does this by itself; call it
    /// after a reload to learn what survived.)
    pub fn adopt(&self, state: &mut SequenceState) {
        state.rebind(self.id, &self.hashes);
    }

    /// Drops expired partial matches (the engine may call this now and then).
    pub fn sweep(&self, state: &mut SequenceState, now_micros: i64) {
        state.rebind(self.id, &self.hashes);
        state.sweep(&self.program.sequences, now_micros);
    }

    fn armed<C: Context + ?Sized>(
        &self,
        state: &SequenceState,
        ctx: &C,
        seq: u16,
        min: u8,
        now: Option<i64>,
    ) -> bool {
        let Some(def) = self.program.sequences.get(usize::from(seq)) else {
            return false;
        };
        let Some(key) = key_for(&def.by, ctx) else {
            return false;
        };
        state.get(&key).is_some_and(|parts| {
            parts.iter().any(|p| {
                p.seq == seq && p.stage >= min && now.is_none_or(|now| !p.expired(def, now))
            })
        })
    }

    fn rules_into<C: Context + ?Sized>(
        &self,
        ctx: &C,
        armed: Option<&dyn Fn(u16, u8) -> bool>,
        error: &Cell<Option<&'static str>>,
        now: Option<i64>,
        out: &mut Verdict,
    ) {
        let env = Env {
            ctx,
            captures: None,
            armed,
            error,
            unknown_state: false,
        };
        let mut cands = std::mem::take(&mut out.scratch);
        self.index.candidates(ctx, &mut cands);
        let mut allowed = false;
        for &i in &cands {
            let Some(rule) = self.program.rules.get(i as usize) else {
                continue;
            };
            if eval(&rule.when, &env) != Tri::True {
                continue;
            }
            let excepted = rule.exceptions.iter().any(|ex| {
                now.is_none_or(|t| t < ex.expires_at) && eval(&ex.when, &env) == Tri::True
            });
            if excepted {
                continue;
            }
            allowed |= matches!(rule.effect, EffectDef::Allow);
            apply(
                &rule.name,
                false,
                &rule.effect,
                rule.alert.as_ref(),
                ctx,
                &[],
                out,
            );
        }
        out.scratch = cands;
        // Remember whether a rule allowed in `default_applied` until `finish`.
        out.default_applied = !allowed;
    }

    fn default_allows<C: Context + ?Sized>(
        &self,
        ctx: &C,
        error: &Cell<Option<&'static str>>,
    ) -> bool {
        let env = Env {
            ctx,
            captures: None,
            armed: None,
            error,
            unknown_state: false,
        };
        let mut conditional = None;
        let mut unconditional = None;
        for d in &self.program.defaults {
            match &d.when {
                Some(w) => {
                    if eval(w, &env) == Tri::True {
                        conditional = Some(conditional.unwrap_or(true) && d.allow);
                    }
                }
                None => unconditional = Some(unconditional.unwrap_or(true) && d.allow),
            }
        }
        conditional
            .or(unconditional)
            .unwrap_or(self.options.default_allow)
    }

    fn finish<C: Context + ?Sized>(
        &self,
        ctx: &C,
        error: &Cell<Option<&'static str>>,
        out: &mut Verdict,
    ) {
        let allowed_by_rule = !out.default_applied;
        let blocked = out.matched.iter().any(|m| m.effect == Some(Effect::Block));
        out.approvals.sort_by(|a, b| a.rule.cmp(&b.rule));
        out.default_applied = false;
        out.effect = if blocked {
            Effect::Block
        } else if !out.approvals.is_empty() {
            Effect::RequireApproval
        } else {
            let allowed = allowed_by_rule || {
                let d = self.default_allows(ctx, error);
                out.default_applied = true;
                d
            };
            if !allowed {
                out.reason = Some("no rule allows this request (default deny)".to_owned());
                Effect::Block
            } else if out.masks.is_empty() {
                Effect::Allow
            } else {
                Effect::Mask
            }
        };
        if let Some(e) = error.get() {
            out.effect = Effect::Block;
            out.error = Some(e.to_owned());
            out.reason = Some(format!("policy evaluation error: {e}"));
        }
    }

    /// Phase 1 of a step for one group (read-only): what happens to each partial of
    /// `key` (dropped: expired or `until`; advanced: this request matches its next
    /// stage) and which sequences this request starts.
    #[expect(
        clippy::too_many_arguments,
        reason = "one group's slice of a step's inputs"
    )]
    fn plan_group<C: Context + ?Sized>(
        &self,
        ctx: &C,
        st: &SequenceState,
        g: usize,
        members: &[u16],
        key: &str,
        now: i64,
        request: bool,
        error: &Cell<Option<&'static str>>,
        cands: &mut Vec<u32>,
    ) -> (Vec<(usize, Action)>, Vec<u16>) {
        let seqs = &self.program.sequences;
        let mut actions: Vec<(usize, Action)> = Vec::new();
        let mut starts: Vec<u16> = Vec::new();
        let armed = |seq: u16, min: u8| self.armed(st, ctx, seq, min, Some(now));
        if let Some(parts) = st.get(key) {
            for (i, p) in parts.iter().enumerate() {
                if !members.contains(&p.seq) {
                    continue;
                }
                let Some(seq) = seqs.get(usize::from(p.seq)) else {
                    continue;
                };
                let env = Env {
                    ctx,
                    captures: p.captures(),
                    armed: Some(&armed),
                    error,
                    unknown_state: false,
                };
                let until = || {
                    seq.until
                        .as_ref()
                        .is_some_and(|u| eval(u, &env) == Tri::True)
                };
                if p.expired(seq, now) || until() {
                    actions.push((i, Action::Drop));
                } else if request
                    && seq
                        .stages
                        .get(usize::from(p.stage))
                        .is_some_and(|s| eval(&s.when, &env) == Tri::True)
                {
                    actions.push((i, Action::Advance));
                }
            }
        }
        if request {
            let env = Env {
                ctx,
                captures: None,
                armed: Some(&armed),
                error,
                unknown_state: false,
            };
            match self.starts.get(g) {
                Some(index) => index.candidates(ctx, cands),
                None => cands.clear(),
            }
            for s in cands
                .iter()
                .filter_map(|&c| members.get(c as usize).copied())
            {
                let first = seqs.get(usize::from(s)).and_then(|d| d.stages.first());
                if first.is_some_and(|st| eval(&st.when, &env) == Tri::True) {
                    starts.push(s);
                }
            }
        }
        (actions, starts)
    }

    /// The keys of the sequence state a request of `ctx` reads and may change: one per
    /// group of sequences keyed alike (`by`), for callers that order the judgement
    /// and the application of requests that share a key.
    pub fn keys<C: Context + ?Sized>(&self, ctx: &C) -> Vec<String> {
        let mut keys: Vec<String> = self
            .groups
            .iter()
            .filter_map(|(by, _)| key_for(by, ctx).map(Cow::into_owned))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Whether a request could advance a sequence past its first stage once partial
    /// matches held elsewhere are known (another gateway's stages, ADR 0025): some
    /// later stage's condition is true or unknown with every capture and `armed`
    /// test unknown. A gateway folds what the cluster acknowledged before judging
    /// such a request.
    pub fn may_advance<C: Context + ?Sized>(&self, ctx: &C) -> bool {
        let error = Cell::new(None);
        let env = Env {
            ctx,
            captures: None,
            armed: None,
            error: &error,
            unknown_state: true,
        };
        self.program.sequences.iter().any(|seq| {
            seq.stages
                .iter()
                .skip(1)
                .any(|st| eval(&st.when, &env) != Tri::False)
        })
    }

    /// Whether every sequence is keyed (`by`) on `field` among others: then events
    /// with different values of `field` never share sequence state.
    pub fn sequences_keyed_by(&self, field: FieldId) -> bool {
        self.groups.iter().all(|(by, _)| {
            by.iter()
                .any(|f| f.id == field && f.derive == crate::ir::Derive::None)
        })
    }

    /// Whether a request would change the sequence state (start, advance or drop a
    /// partial match) if applied now. Read-only.
    pub fn touches<C: Context + ?Sized>(&self, ctx: &C, state: &SequenceState) -> bool {
        if self.program.sequences.is_empty() || !state.bound_to(self.id) {
            return !self.program.sequences.is_empty();
        }
        let Some(now) = self.now(ctx) else {
            return false;
        };
        let error = Cell::new(None);
        let mut cands = Vec::new();
        self.groups.iter().enumerate().any(|(g, (by, members))| {
            key_for(by, ctx).is_some_and(|key| {
                let (actions, starts) =
                    self.plan_group(ctx, state, g, members, &key, now, true, &error, &mut cands);
                !actions.is_empty() || !starts.is_empty()
            })
        })
    }

    /// Judges the requests of one batch (the statements of one query string) in
    /// order, each seeing the changes the earlier ones will make, without changing
    /// `state`; with whether applying each will change the state.
    pub fn judge_batch<C: Context>(
        &self,
        ctxs: &[C],
        state: &SequenceState,
    ) -> Vec<(Verdict, bool)> {
        if let [one] = ctxs {
            return vec![self.judge(one, state)];
        }
        let mut keys: Vec<String> = ctxs.iter().flat_map(|c| self.keys(c)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut scratch = state.scratch(&keys);
        ctxs.iter()
            .map(|ctx| {
                let touches = self.touches(ctx, &scratch);
                let mut v = Verdict::default();
                self.evaluate_into(ctx, &mut scratch, &mut v);
                (v, touches)
            })
            .collect()
    }

    /// Decides on a request against `state` without changing it (judge first, apply
    /// after the decision is committed: [`RuleSet::replay`] then makes the change this
    /// judgement saw). The verdict is the one [`RuleSet::evaluate`] gives on the same
    /// state. Also returns whether applying the request will change the state.
    pub fn judge<C: Context + ?Sized>(&self, ctx: &C, state: &SequenceState) -> (Verdict, bool) {
        let mut v = Verdict::default();
        if !self.touches(ctx, state) {
            // Nothing moves: the rules, reading the state as it is.
            let error = Cell::new(None);
            let now = self.now(ctx);
            {
                let armed = |seq: u16, min: u8| self.armed(state, ctx, seq, min, now);
                self.rules_into(ctx, Some(&armed), &error, now, &mut v);
            }
            self.finish(ctx, &error, &mut v);
            return (v, false);
        }
        // Something moves: evaluate on a copy of this request's keys.
        let mut scratch = state.scratch(&self.keys(ctx));
        self.evaluate_into(ctx, &mut scratch, &mut v);
        (v, true)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "internal step shared by decide, replay and observe"
    )]
    fn step<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: &mut SequenceState,
        now: Option<i64>,
        request: bool,
        mut out: Option<&mut Verdict>,
        evictions: &mut Vec<Eviction>,
        error: &Cell<Option<&'static str>>,
    ) {
        let Some(now) = now else {
            return;
        };
        let seqs = &self.program.sequences;
        let ev_ref = ctx.event_ref();
        let mut completions: Vec<(u16, Box<[u128]>)> = Vec::new();
        let mut cands = Vec::new();
        for (g, (by, members)) in self.groups.iter().enumerate() {
            let Some(key) = key_for(by, ctx) else {
                continue;
            };
            // Phase 1 (read-only): decide what happens to each partial and which
            // sequences start, against the state before this event.
            let (actions, starts) = self.plan_group(
                ctx, state, g, members, &key, now, request, error, &mut cands,
            );
            // Phase 2: apply.
            if !actions.is_empty() {
                let mut removed = 0;
                let (mut pending_added, mut pending_dropped) = (0, 0);
                if let Some(parts) = state.get_mut(&key) {
                    for (i, action) in actions.into_iter().rev() {
                        let Some(p) = parts.get_mut(i) else { continue };
                        let Some(seq) = seqs.get(usize::from(p.seq)) else {
                            continue;
                        };
                        match action {
                            Action::Drop => {
                                let gone = parts.swap_remove(i);
                                pending_dropped += gone.completing.map_or(0, |c| c.len());
                                removed += 1;
                            }
                            Action::Advance => {
                                if let Some(o) = out.as_deref_mut() {
                                    o.staged = true;
                                }
                                let stage_index = usize::from(p.stage);
                                if let Some(slot) = p.events.get_mut(stage_index) {
                                    *slot = ev_ref;
                                }
                                p.last = now;
                                capture_fields(seq, stage_index, p, ctx, out.as_deref_mut());
                                if stage_index + 1 >= seq.stages.len() {
                                    // Complete: the partial stays armed until this
                                    // request is seen to run (`on_outcome`).
                                    completions.push((p.seq, p.events.clone()));
                                    let mut refs: Vec<u128> =
                                        p.completing.take().map(Vec::from).unwrap_or_default();
                                    if !refs.contains(&ev_ref) {
                                        refs.push(ev_ref);
                                        pending_added += 1;
                                    }
                                    p.completing = Some(refs.into_boxed_slice());
                                } else {
                                    p.stage = p.stage.saturating_add(1);
                                }
                            }
                        }
                    }
                }
                state.removed(removed);
                state.pending_changed(pending_added, pending_dropped);
                state.drop_empty(&key);
            }
            if !starts.is_empty()
                && let Some(o) = out.as_deref_mut()
            {
                o.staged = true;
            }
            for s in starts {
                let Some(seq) = seqs.get(usize::from(s)) else {
                    continue;
                };
                let first_has_captures =
                    seq.stages.first().is_some_and(|st| !st.captures.is_empty());
                if !first_has_captures {
                    // An equivalent newer partial dominates an older one: refresh it.
                    if let Some(p) = state.get_mut(&key).and_then(|parts| {
                        // Not one whose completion waits for its outcome: that is
                        // another chain.
                        parts
                            .iter_mut()
                            .find(|p| p.seq == s && p.stage == 1 && p.completing.is_none())
                    }) {
                        p.started = now;
                        p.last = now;
                        if let Some(e) = p.events.first_mut() {
                            *e = ev_ref;
                        }
                        continue;
                    }
                }
                let mut events = vec![0u128; seq.stages.len()].into_boxed_slice();
                if let Some(e) = events.first_mut() {
                    *e = ev_ref;
                }
                let mut p = Partial {
                    started: now,
                    last: now,
                    seq: s,
                    stage: 1,
                    completing: None,
                    events,
                    captures: (seq.slots > 0).then(|| {
                        vec![Captured::default(); usize::from(seq.slots)].into_boxed_slice()
                    }),
                };
                capture_fields(seq, 0, &mut p, ctx, out.as_deref_mut());
                state.insert(key.clone(), p, seqs, now, evictions);
            }
        }
        if let Some(out) = out {
            completions.sort_by_key(|(s, _)| *s);
            for (s, events) in completions {
                let Some(seq) = seqs.get(usize::from(s)) else {
                    continue;
                };
                apply(
                    &seq.name,
                    true,
                    &seq.effect,
                    Some(&seq.alert),
                    ctx,
                    &events,
                    out,
                );
            }
        }
    }

    /// Evaluates every rule and every sequence stage against an event, saying why each
    /// matched or not. Stages are tested without captures.
    pub fn explain<C: Context + ?Sized>(
        &self,
        ctx: &C,
        state: Option<&SequenceState>,
    ) -> Vec<Explanation> {
        let error = Cell::new(None);
        let now = self.now(ctx);
        let armed = |seq: u16, min: u8| state.is_some_and(|st| self.armed(st, ctx, seq, min, now));
        let env = Env {
            ctx,
            captures: None,
            armed: Some(&armed),
            error: &error,
            unknown_state: false,
        };
        let mut out = Vec::new();
        for rule in &self.program.rules {
            let conditions = match &rule.when {
                Node::And(children) if children.len() == rule.when_text.len() => rule
                    .when_text
                    .iter()
                    .cloned()
                    .zip(children.iter().map(|c| eval(c, &env)))
                    .collect(),
                other => vec![(rule.when_text.join(" and "), eval(other, &env))],
            };
            let exceptions: Vec<(String, String, Tri, bool)> = rule
                .exceptions
                .iter()
                .map(|ex| {
                    let expired = now.is_some_and(|t| t >= ex.expires_at);
                    (
                        ex.name.to_string(),
                        ex.owner.to_string(),
                        eval(&ex.when, &env),
                        expired,
                    )
                })
                .collect();
            let excepted = exceptions
                .iter()
                .any(|(_, _, t, expired)| *t == Tri::True && !expired);
            out.push(Explanation {
                name: rule.name.to_string(),
                kind: "rule",
                matched: eval(&rule.when, &env) == Tri::True && !excepted,
                conditions,
                exceptions,
                effect: effect_of(&rule.effect),
            });
        }
        for seq in &self.program.sequences {
            for stage in &seq.stages {
                let t = eval(&stage.when, &env);
                out.push(Explanation {
                    name: format!("{}.{}", seq.name, stage.name),
                    kind: "stage",
                    matched: t == Tri::True,
                    conditions: vec![(String::from("stage condition"), t)],
                    exceptions: Vec::new(),
                    effect: None,
                });
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Drop,
    Advance,
}

fn effect_of(e: &EffectDef) -> Option<Effect> {
    match e {
        EffectDef::Allow => Some(Effect::Allow),
        EffectDef::Block(_) => Some(Effect::Block),
        EffectDef::Approval { .. } => Some(Effect::RequireApproval),
        EffectDef::Mask(_) => Some(Effect::Mask),
        // A bound on what an allowed statement may do; it allows nothing itself.
        EffectDef::LimitRows(_) => Some(Effect::Allow),
        EffectDef::Alert => None,
    }
}

/// Stores field captures of a stage and asks for result captures.
fn capture_fields<C: Context + ?Sized>(
    seq: &SeqDef,
    stage: usize,
    p: &mut Partial,
    ctx: &C,
    out: Option<&mut Verdict>,
) {
    let Some(st) = seq.stages.get(stage) else {
        return;
    };
    let mut out = out;
    for cap in &st.captures {
        match &cap.source {
            CaptureSource::Field(f) => {
                let Some(slot) = p
                    .captures
                    .as_mut()
                    .and_then(|c| c.get_mut(usize::from(cap.slot)))
                else {
                    continue;
                };
                match ctx.get(f.id) {
                    Value::List(l) => {
                        for v in l.iter() {
                            slot.push(v, cap.limit, cap.bytes);
                        }
                    }
                    Value::Missing => {}
                    _ => {
                        let mut s = String::new();
                        render_field(*f, ctx, &mut s);
                        slot.push(&s, cap.limit, cap.bytes);
                    }
                }
            }
            CaptureSource::Result { function, arg } => {
                if let Some(out) = out.as_deref_mut() {
                    out.captures.push(CaptureRequest {
                        name: cap.qualified.clone(),
                        source: function.clone(),
                        arg: arg.clone(),
                        limit: cap.limit,
                        max_bytes: cap.bytes,
                    });
                }
            }
        }
    }
}

/// Adds one matched rule's or sequence's effect and alert to a verdict.
fn apply<C: Context + ?Sized>(
    name: &Arc<str>,
    sequence: bool,
    effect: &EffectDef,
    alert: Option<&AlertDef>,
    ctx: &C,
    related: &[u128],
    out: &mut Verdict,
) {
    out.matched.push(Matched {
        name: name.clone(),
        sequence,
        effect: effect_of(effect),
    });
    match effect {
        EffectDef::Allow | EffectDef::Alert => {}
        EffectDef::Block(msg) => {
            if out.reason.is_none() {
                out.reason = Some(match msg {
                    Some(t) => t.render(ctx),
                    None => format!("blocked by `{name}`"),
                });
            }
        }
        EffectDef::Approval { group, timeout } => out.approvals.push(Approval {
            rule: name.clone(),
            group: group.clone(),
            timeout_micros: *timeout,
        }),
        EffectDef::Mask(spec) => out.masks.push(spec.clone()),
        EffectDef::LimitRows(n) => {
            out.row_limit = Some(out.row_limit.map_or(*n, |m| m.min(*n)));
        }
    }
    if let Some(a) = alert {
        let message = match &a.message {
            Some(t) => t.render(ctx),
            None if sequence => format!("sequence `{name}` completed"),
            None => format!("rule `{name}` matched"),
        };
        let mut rel = related.to_vec();
        if sequence && let Some(last) = rel.iter_mut().rev().find(|e| **e == 0) {
            *last = ctx.event_ref();
        }
        out.alerts.push(Alert {
            rule: name.clone(),
            sequence,
            severity: a.severity,
            tags: a.tags.clone(),
            message,
            related: rel,
        });
    }
}

fn build_index(conditions: &[&Node]) -> Index {
    let mut candidates: Vec<Vec<(FieldId, Vec<Box<str>>)>> = Vec::with_capacity(conditions.len());
    let mut popularity: HashMap<(FieldId, Box<str>), usize> = HashMap::new();
    for when in conditions {
        let mut keys = Vec::new();
        index_keys(when, &mut keys);
        for (f, values) in &keys {
            for v in values {
                *popularity.entry((*f, v.clone())).or_default() += 1;
            }
        }
        candidates.push(keys);
    }
    let mut index = Index::default();
    for (i, keys) in candidates.into_iter().enumerate() {
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        let best = keys.into_iter().min_by_key(|(f, values)| {
            let worst = values
                .iter()
                .map(|v| popularity.get(&(*f, v.clone())).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            (worst, values.len(), f.0)
        });
        if let Some((field, values)) = best {
            let slot = match index.by_value.iter().position(|(f, _)| *f == field) {
                Some(p) => p,
                None => {
                    index.by_value.push((field, HashMap::new()));
                    index.by_value.len() - 1
                }
            };
            if let Some((_, buckets)) = index.by_value.get_mut(slot) {
                for v in values {
                    buckets.entry(v).or_default().push(id);
                }
            }
            continue;
        }
        let mut req = Vec::new();
        if let Some(when) = conditions.get(i) {
            required_fields(when, &mut req);
        }
        match req.first() {
            Some(field) => match index.by_presence.iter_mut().find(|(f, _)| f == field) {
                Some((_, rules)) => rules.push(id),
                None => index.by_presence.push((*field, vec![id])),
            },
            None => index.always.push(id),
        }
    }
    index
}
