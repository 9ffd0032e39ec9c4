//! Client side: plan a segment of frames (classify, one `decide_after`), then enforce
//! each frame in order.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_core::engine::{ApprovalOutcome, Decision, Enforcement};
use gatehouse_dsl::mask::MaskSpec;
use gatehouse_events::payload::{
    DecisionMade, Effect, PgKind, PgStatement, RequestDetail, RequestObserved, ResultObserved,
    ResultStatus,
};
use tokio::runtime::RuntimeFlavor;

use super::run::{Run, refused};
use super::{End, Expect, HEAVY_BYTES, Held, Portal, Prepared, QueryExchange, Relay, YIELD_WORK};
use crate::catalog::Snapshot;
use crate::classify::{MAX_TEXT, TooMany, unparsed};
use crate::wire::backend::Report;
use crate::wire::frame::{self, put, put_cstr};
use crate::wire::frontend::{self, Message, Target};

/// The text sent upstream in place of a refused statement: it fails to parse, so the
/// server reacts exactly as to a failed statement, and runs nothing.
pub(super) const BLOCKED_SQL: &[u8] = b"GATEHOUSE BLOCKED";

/// Most requests judged (and written to the log) in one `decide_after`.
const JUDGE_CHUNK: usize = 256;

/// Longest parameter value kept in an event.
const MAX_PARAM: usize = 256;

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Query,
    Parse(String),
    Execute {
        portal: String,
    },
    Bind,
    Describe(Target, String),
    Close,
    Sync,
    Flush,
    Terminate,
    Copy,
    FunctionCall,
    /// Discarded: the upstream skips until Sync.
    Drop,
}

/// A client frame with its decisions.
pub(super) struct Step {
    raw: Bytes,
    kind: Kind,
    /// One per statement the frame carries (a query string may hold several).
    pub(super) decisions: Vec<Arc<Decision>>,
    /// Outcome of each approval asked for (index = decision).
    approvals: Vec<Option<Result<(), Report>>>,
    /// Refused before or without judging (log unavailable, policy error, a query
    /// string over the statement limit): the error the client gets.
    error: Option<Report>,
    /// Derived result labels, per statement.
    derived: Vec<crate::classify::Derived>,
    /// A statement of the query string controls the transaction block.
    transaction_control: bool,
}

impl Step {
    fn new(raw: Bytes, kind: Kind) -> Self {
        Self {
            raw,
            kind,
            decisions: Vec::new(),
            approvals: Vec::new(),
            error: None,
            derived: Vec::new(),
            transaction_control: false,
        }
    }
}

fn render_param(v: Option<&[u8]>, binary: bool) -> Option<String> {
    let v = v?;
    if !binary && let Ok(s) = std::str::from_utf8(v) {
        let mut end = s.len().min(MAX_PARAM);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return Some(s.get(..end).unwrap_or_default().to_owned());
    }
    let mut s = String::from("\\x");
    for b in v.iter().take(MAX_PARAM / 2) {
        let _ = write!(s, "{b:02x}");
    }
    Some(s)
}

/// The lineage of a statement that reads views: every output column may also hold
/// any column the views read (lineage follows names, and a view renames them), so a
/// view over a masked column has its columns masked whole; a view over none is
/// untouched.
fn through_views(
    derived: &crate::classify::Derived,
    stmt: &PgStatement,
    snap: Option<&Snapshot>,
) -> crate::classify::Derived {
    let Some(snap) = snap else {
        return derived.clone();
    };
    let mut extra: Vec<String> = Vec::new();
    for t in &stmt.tables_read {
        let Some((schema, name)) = t.rsplit_once('.') else {
            continue;
        };
        let schema = schema.rsplit('.').next().unwrap_or(schema);
        if let Some(body) = snap.relation(schema, name).and_then(|r| r.body.as_ref()) {
            for c in &body.columns {
                if !extra.contains(c) {
                    extra.push(c.clone());
                }
            }
        }
    }
    if extra.is_empty() {
        return derived.clone();
    }
    Arc::new(derived.widened(&extra))
}

fn request(text: &str, stmt: PgStatement) -> (String, RequestDetail) {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (
        text.get(..end).unwrap_or_default().to_owned(),
        RequestDetail::Postgres(stmt),
    )
}

impl Relay {
    /// Plans, judges and enforces queued client frames until all are done or one is
    /// held for approval.
    pub(super) async fn process(&mut self) -> Result<(), End> {
        loop {
            if self.held.is_some() {
                return Ok(());
            }
            if let Some(step) = self.ready.front() {
                // While a `limit rows` bound is judged, the rest waits.
                if !self.guard_allows(&step.kind) {
                    return Ok(());
                }
            }
            if let Some(step) = self.ready.pop_front() {
                let kind = step.kind.clone();
                self.enforce(step);
                self.guard_dispatched(&kind);
                continue;
            }
            if self.queue.is_empty() {
                return Ok(());
            }
            if self.queued > HEAVY_BYTES {
                self.plan_heavy().await?;
            } else {
                self.plan_segment().await?;
            }
        }
    }

    /// Plans and judges a segment on this thread, outside the async runtime: a long
    /// query string (or a long pipeline) takes milliseconds to seconds of CPU to
    /// classify and judge, and on an async worker that stalls every session queued
    /// behind it. `block_in_place` hands this worker's other tasks to a new worker
    /// first; the proxy's semaphore bounds how many such threads run at once.
    async fn plan_heavy(&mut self) -> Result<(), End> {
        let heavy = self.options.heavy.clone();
        // The semaphore is never closed; if it were, judging inline is still correct.
        let _permit = heavy.acquire_owned().await.ok();
        self.work = YIELD_WORK;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(self.plan_segment()))
            }
            // A single-threaded runtime has no other worker to hand tasks to.
            _ => self.plan_segment().await,
        }
    }

    async fn one_statement(
        &mut self,
        query: &str,
        snap: &mut Option<Arc<Snapshot>>,
        since: std::time::Instant,
    ) -> (String, PgStatement, crate::classify::Derived) {
        let all = self.cache.classify(query, 1);
        match all.as_ref().map(|a| (a, &*a.statements)) {
            Ok((all, [one])) => {
                if let Some(crate::classify::SqlEffect::Reason(r)) = &one.effect {
                    self.session.set_reason(r);
                }
                self.catalog_knows(snap, &one.stmt, since).await;
                let stmt = self.sql.resolve_in(one, snap.as_deref());
                let derived = through_views(&one.derived, &stmt, snap.as_deref());
                (all.text(0).to_owned(), stmt, derived)
            }
            _ => {
                let c = unparsed(
                    query,
                    "a prepared statement must hold exactly one statement",
                );
                (c.text, c.stmt, c.derived)
            }
        }
    }

    /// The target's catalog for this segment: read again first when the session ran
    /// DDL since (it has completed: this segment was sent after it).
    async fn catalog_snapshot(&mut self) -> Option<Arc<Snapshot>> {
        let catalog = self.options.catalog.clone()?;
        if std::mem::take(&mut self.sql.catalog_dirty) {
            catalog.invalidate();
        }
        Some(catalog.snapshot().await)
    }

    /// A function-call message, judged as a call of the function its OID names in
    /// the catalog (read again once when the OID is not in it): its name, what its
    /// body reaches, its arguments. An OID the catalog does not know is a call the
    /// gateway cannot resolve (`unresolved`).
    async fn function_call(
        &mut self,
        snap: &mut Option<Arc<Snapshot>>,
        call: &frontend::FunctionCall<'_>,
        since: std::time::Instant,
    ) -> (String, PgStatement) {
        let oid = call.oid;
        let lookup =
            |s: &Option<Arc<Snapshot>>| s.as_ref().and_then(|s| s.function_oids.get(&oid).cloned());
        let mut name = lookup(snap);
        if name.is_none()
            && let (Some(catalog), Some(s)) = (&self.options.catalog, snap.as_ref())
        {
            *snap = Some(catalog.read_since(s, since).await);
            name = lookup(snap);
        }
        let params = call
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let format = match call.arg_formats.as_slice() {
                    [] => 0,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(0),
                };
                render_param(*a, format == 1)
            })
            .collect();
        let Some((schema, function)) = name else {
            let stmt = PgStatement {
                kind: PgKind::Call,
                statement_count: 1,
                phase: "function_call".into(),
                functions: vec![format!("oid:{oid}")],
                params,
                unresolved: Some(format!(
                    "a function-call message calls function OID {oid}, which is not in the target's catalog"
                )),
                ..PgStatement::default()
            };
            return (format!("function call (OID {oid})"), stmt);
        };
        // Classified as the call written in SQL: its name, the capability it is,
        // what its body reaches.
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = format!("SELECT {}.{}()", quote(&schema), quote(&function));
        let c = match crate::classify::classify(&sql, 1) {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            _ => crate::classify::unparsed(&sql, "a function name that does not read as a call"),
        };
        self.catalog_knows(snap, &c.stmt, since).await;
        let mut stmt = self.sql.resolve_in(&c, snap.as_deref());
        if stmt.kind != PgKind::Unparsed {
            stmt.kind = PgKind::Call;
        }
        stmt.statement_count = 1;
        stmt.phase = "function_call".into();
        stmt.params = params;
        (
            format!("function call {schema}.{function} (OID {oid})"),
            stmt,
        )
    }

    /// Reads the catalog again when `stmt` names something the reading does not know
    /// and the reading is older than the segment (it may have been created elsewhere
    /// since: a name the reading does not know is never taken for a plain table).
    async fn catalog_knows(
        &mut self,
        snap: &mut Option<Arc<Snapshot>>,
        stmt: &PgStatement,
        since: std::time::Instant,
    ) {
        if let (Some(catalog), Some(s)) = (&self.options.catalog, snap.as_ref())
            && !s.knows(stmt)
        {
            *snap = Some(catalog.read_since(s, since).await);
        }
    }

    /// Whether the unnamed statement parsed by the frame at the head of the queue is
    /// bound and executed by frames already received, before any other Parse or Sync.
    fn executed_next(&self) -> bool {
        let mut portals: Vec<&str> = Vec::new();
        for raw in self.queue.iter().skip(1) {
            let Some(f) = frame::peek(raw, usize::MAX).ok().flatten() else {
                return false;
            };
            match frontend::decode(f, raw) {
                Ok(Message::Bind(b)) if b.statement.is_empty() => portals.push(b.portal),
                Ok(Message::Bind(b)) => portals.retain(|p| *p != b.portal),
                Ok(Message::Execute { portal, .. }) if portals.contains(&portal) => return true,
                Ok(Message::Describe(..) | Message::Execute { .. } | Message::Flush) => {}
                _ => return false,
            }
        }
        false
    }

    /// Takes frames from the queue up to a dependency, classifies them and judges
    /// them with one `decide_after` (which also writes pending results).
    async fn plan_segment(&mut self) -> Result<(), End> {
        let since = std::time::Instant::now();
        let mut snap = self.catalog_snapshot().await;
        let mut steps: Vec<(Step, usize)> = Vec::new();
        let mut derived_of_step: Vec<crate::classify::Derived>;
        let mut requests = Vec::new();
        while let Some(raw) = self.queue.front().cloned() {
            let f = frame::peek(&raw, usize::MAX)
                .ok()
                .flatten()
                .ok_or(End::Protocol(crate::wire::FrameError::Malformed(
                    "frame", "lost",
                )))?;
            let msg = frontend::decode(f, &raw).map_err(End::Protocol)?;
            let skipping = self.skipping;
            derived_of_step = Vec::new();
            let mut transaction_control = false;
            let mut refusal = None;
            let (kind, n) = match msg {
                Message::Sync => (Kind::Sync, 0),
                Message::Flush => (Kind::Flush, 0),
                Message::Terminate => (Kind::Terminate, 0),
                Message::CopyData | Message::CopyDone | Message::CopyFail => (Kind::Copy, 0),
                _ if skipping => (Kind::Drop, 0),
                Message::FunctionCall(call) => {
                    let (text, stmt) = self.function_call(&mut snap, &call, since).await;
                    requests.push(request(&text, stmt));
                    (Kind::FunctionCall, 1)
                }
                Message::Query(q) => match self.cache.classify(q, self.options.max_statements) {
                    Ok(all) => {
                        for (i, c) in all.statements.iter().enumerate() {
                            if let Some(crate::classify::SqlEffect::Reason(r)) = &c.effect {
                                self.session.set_reason(r);
                            }
                            transaction_control |= c.stmt.transaction_control.is_some();
                            self.catalog_knows(&mut snap, &c.stmt, since).await;
                            let mut stmt = self.sql.resolve_in(c, snap.as_deref());
                            let derived = through_views(&c.derived, &stmt, snap.as_deref());
                            derived_of_step.push(self.rows_of.resolve(&derived));
                            stmt.phase = "simple".into();
                            requests.push(request(all.text(i), stmt));
                        }
                        (Kind::Query, all.statements.len())
                    }
                    Err(too_many) => {
                        // Refused unjudged: judging it is the very cost being bounded.
                        refusal = Some(self.too_many(q, too_many));
                        (Kind::Query, 0)
                    }
                },
                Message::Parse { name, query, .. } => {
                    let (text, mut stmt, derived) =
                        self.one_statement(query, &mut snap, since).await;
                    self.rows_of.protocol(name, Some(derived.clone()));
                    stmt.phase = "parse".into();
                    stmt.prepared_name = Some(name.to_owned());
                    let shared: Arc<str> = Arc::from(text.as_str());
                    // An unnamed statement executed in the same batch is judged once,
                    // at its execution (one event, one approval).
                    let at_execute = name.is_empty() && self.executed_next();
                    let judged_now = (!at_execute).then(|| stmt.clone());
                    self.statements.insert(
                        name.to_owned(),
                        Prepared {
                            stmt: Arc::new(stmt),
                            text: shared,
                            event: None,
                            undecided: !at_execute,
                            derived,
                            columns: None,
                        },
                    );
                    match judged_now {
                        None => (Kind::Parse(name.to_owned()), 0),
                        Some(stmt) => {
                            requests.push(request(&text, stmt));
                            (Kind::Parse(name.to_owned()), 1)
                        }
                    }
                }
                Message::Bind(b) => {
                    let params = b
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, v)| render_param(*v, b.param_format(i) == 1))
                        .collect();
                    self.portals.insert(
                        b.portal.to_owned(),
                        Portal {
                            statement: b.statement.to_owned(),
                            params,
                            formats: b.result_formats.clone(),
                        },
                    );
                    (Kind::Bind, 0)
                }
                Message::Execute { portal, .. } => {
                    let found = self
                        .portals
                        .get(portal)
                        .and_then(|p| self.statements.get(&p.statement).map(|s| (p, s)));
                    let (text, stmt) = match found {
                        Some((p, s)) => {
                            if s.undecided && !steps.is_empty() {
                                // The execute event refers to the parse event: judge
                                // the parse first.
                                break;
                            }
                            let mut stmt = (*s.stmt).clone();
                            stmt.phase = "execute".into();
                            stmt.prepared_name = Some(p.statement.clone());
                            stmt.prepared_event = s.event;
                            stmt.params = p.params.clone();
                            derived_of_step.push(self.rows_of.resolve(&s.derived));
                            (s.text.to_string(), stmt)
                        }
                        None => {
                            let mut c =
                                unparsed("", format!("Execute of unknown portal `{portal}`"));
                            c.stmt.phase = "execute".into();
                            (String::new(), c.stmt)
                        }
                    };
                    requests.push((text, RequestDetail::Postgres(stmt)));
                    (
                        Kind::Execute {
                            portal: portal.to_owned(),
                        },
                        1,
                    )
                }
                Message::Describe(t, name) => (Kind::Describe(t, name.to_owned()), 0),
                Message::Close(t, name) => {
                    match t {
                        Target::Statement => {
                            self.statements.remove(name);
                            self.rows_of.protocol(name, None);
                        }
                        Target::Portal => {
                            self.portals.remove(name);
                        }
                    }
                    (Kind::Close, 0)
                }
            };
            self.queue.pop_front();
            self.queued = self.queued.saturating_sub(raw.len());
            let mut step = Step::new(raw, kind);
            step.derived = std::mem::take(&mut derived_of_step);
            step.transaction_control = transaction_control;
            step.error = refusal;
            steps.push((step, n));
        }
        let (decisions, failed) = self.judge(requests).await;
        if let Some(error) = &failed {
            tracing::error!(message = "Cannot judge a request; refusing it.", session = %self.session.id, %error);
        }
        let mut it = decisions.into_iter().map(Arc::new);
        for (step, n) in &mut steps {
            // After a failure, the decisions made before it are kept: their requests
            // are logged, and the refusal records a result for each.
            step.decisions = it.by_ref().take(*n).collect();
            step.approvals = vec![None; step.decisions.len()];
            if let Some(error) = &failed {
                if *n > 0 {
                    step.error = Some(Report::error(
                        "58000",
                        format!("gatehouse cannot judge the statement, so it was not run: {error}"),
                    ));
                }
                if let Kind::Parse(name) = &step.kind {
                    self.statements.remove(name);
                }
            } else if let (Kind::Parse(name), Some(d)) = (&step.kind, step.decisions.first())
                && let Some(p) = self.statements.get_mut(name)
                && p.undecided
            {
                p.event = Some(d.request);
                p.undecided = false;
            }
        }
        self.ready.extend(steps.into_iter().map(|(s, _)| s));
        Ok(())
    }

    /// Judges a segment's requests with `decide_after`, [`JUDGE_CHUNK`] at a time:
    /// each call is one log write, and the log is shared by every session, so a long
    /// query string must not hold it for the time of all its events at once. Returns
    /// the decisions made, and the error that stopped judging, if any.
    async fn judge(
        &mut self,
        requests: Vec<(String, RequestDetail)>,
    ) -> (Vec<Decision>, Option<String>) {
        if requests.len() <= JUDGE_CHUNK {
            if requests.is_empty() {
                return (Vec::new(), None);
            }
            return match self
                .engine
                .decide_after(&self.session, &mut self.results, requests)
                .await
            {
                Ok(d) => (d, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
        }
        let mut decisions = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter();
        loop {
            let chunk: Vec<_> = requests.by_ref().take(JUDGE_CHUNK).collect();
            if chunk.is_empty() {
                return (decisions, None);
            }
            match self
                .engine
                .decide_after(&self.session, &mut self.results, chunk)
                .await
            {
                Ok(d) => decisions.extend(d),
                Err(e) => return (decisions, Some(e.to_string())),
            }
        }
    }

    /// Records a query string refused for holding more statements than the limit (its
    /// request, the gateway's own block decision and the refusal, written ahead of
    /// the session's next events) and returns the error for the client.
    fn too_many(&mut self, query: &str, too_many: TooMany) -> Report {
        let report = Report::too_many_statements(too_many.limit);
        let gateway = self.engine.gateway_id().to_owned();
        let (command, _) = request(query, PgStatement::default());
        let request = self
            .session
            .event(
                &gateway,
                RequestObserved {
                    reason: None,
                    command,
                    detail: RequestDetail::Postgres(PgStatement {
                        kind: PgKind::Unparsed,
                        phase: "simple".into(),
                        parse_error: Some(too_many.to_string()),
                        ..PgStatement::default()
                    }),
                },
            )
            .build();
        let id = request.id;
        let decision = self
            .session
            .event(
                &gateway,
                DecisionMade {
                    request: Some(id),
                    effect: Effect::Block,
                    reason: Some(report.message.clone()),
                    ..DecisionMade::default()
                },
            )
            .build();
        self.results.extend([request, decision]);
        self.push_result(ResultObserved {
            request: Some(id),
            status: ResultStatus::Refused,
            code: Some(report.code.into()),
            message: Some(report.message.clone()),
            ..ResultObserved::default()
        });
        self.flush_now = true;
        report
    }

    /// The first refusal among the step's decisions, if any, and whether some
    /// decision still waits for a reviewer.
    fn verdict(step: &Step) -> (Option<Report>, Option<usize>) {
        if let Some(e) = &step.error {
            return (Some(e.clone()), None);
        }
        let mut waiting = None;
        for (i, d) in step.decisions.iter().enumerate() {
            match d.enforcement() {
                Enforcement::Refuse(r) => return (Some(blocked(r.message, d)), None),
                Enforcement::Hold { .. } => match step.approvals.get(i).cloned().flatten() {
                    Some(Ok(())) => {}
                    Some(Err(report)) => return (Some(report), None),
                    None => {
                        waiting.get_or_insert(i);
                    }
                },
                Enforcement::Run => {}
            }
        }
        (None, waiting)
    }

    fn enforce(&mut self, step: Step) {
        // The upstream discards everything until Sync after an error (ours or its
        // own, which may have arrived while this step waited): so do we.
        if self.skipping
            && !matches!(
                step.kind,
                Kind::Sync | Kind::Terminate | Kind::Copy | Kind::Flush
            )
        {
            for d in &step.decisions {
                self.push_result(gatehouse_events::payload::ResultObserved {
                    request: Some(d.request),
                    status: gatehouse_events::payload::ResultStatus::Error,
                    rows: Some(0),
                    message: Some("not run: an earlier message of the pipeline failed".into()),
                    ..Default::default()
                });
            }
            return;
        }
        let deciding = matches!(
            step.kind,
            Kind::Query | Kind::Parse(_) | Kind::Execute { .. } | Kind::FunctionCall
        );
        if deciding {
            let (refusal, waiting) = Self::verdict(&step);
            if let Some(report) = refusal {
                self.refuse(step, report);
                return;
            }
            if let Some(i) = waiting {
                if let Some(d) = step.decisions.get(i) {
                    let text = d
                        .message
                        .clone()
                        .unwrap_or_else(|| "the statement is held for approval".into());
                    Report::notice(format!("gatehouse: {text}")).encode(&mut self.to_client);
                }
                self.held = Some(Held { step, waiting: i });
                return;
            }
        }
        match step.kind.clone() {
            Kind::Query => {
                let bounded = step.decisions.iter().any(|d| d.row_limit().is_some());
                if bounded && step.transaction_control {
                    let report = Report::error(
                        "0A000",
                        "gatehouse runs a statement bounded by `limit rows` in a transaction block of its own, so it cannot share a query string with BEGIN, COMMIT, ROLLBACK or SAVEPOINT",
                    )
                    .with_hint("Send the bounded statement in a query string of its own.");
                    self.refuse(step, report);
                    return;
                }
                let limit = step.decisions.iter().filter_map(|d| d.row_limit()).min();
                if let Some(limit) = limit {
                    self.guard_begin(false, limit);
                }
                let masks = all_masks(&step.decisions);
                let runs = step
                    .decisions
                    .iter()
                    .map(|d| {
                        let m = if step.decisions.len() > 1 {
                            masks.clone()
                        } else {
                            d.masks().to_vec()
                        };
                        let mut run = Run::new(d.clone(), m, self.options.sample);
                        // Several statements: which result is whose is the server's
                        // split, not ours, so no column's lineage is taken as known.
                        if let ([one], 1) = (step.derived.as_slice(), step.decisions.len()) {
                            run.derived = one.clone();
                        }
                        run.bound = d.row_limit();
                        run
                    })
                    .collect::<VecDeque<_>>();
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending
                    .push_back(Expect::Query(Box::new(QueryExchange {
                        runs,
                        injected: None,
                        guarded: bounded,
                    })));
                if bounded {
                    self.guard_count(super::guard::Count::After);
                }
            }
            Kind::Parse(_) => {
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending.push_back(Expect::Parse);
            }
            Kind::Execute { portal, .. } => {
                let Some(d) = step.decisions.first() else {
                    return;
                };
                let mut run = Run::new(d.clone(), d.masks().to_vec(), self.options.sample);
                if let Some(derived) = step.derived.first() {
                    run.derived = derived.clone();
                }
                run.bound = d.row_limit();
                if let Some(limit) = run.bound {
                    self.guard_begin(true, limit);
                }
                let statement = self.portals.get(&portal).map(|p| {
                    // Bind with no result formats means text for every column.
                    run.formats = if p.formats.is_empty() {
                        vec![0]
                    } else {
                        p.formats.clone()
                    };
                    p.statement.clone()
                });
                if run.inspects_rows() {
                    let known = statement
                        .as_ref()
                        .and_then(|s| self.statements.get(s))
                        .and_then(|p| p.columns.clone());
                    let described = matches!(self.pending.back(), Some(Expect::DescribePortal { portal: p, .. }) if *p == portal);
                    if let Some(cols) = known {
                        run.describe(&cols);
                    } else if !described {
                        // Describe the portal first (hidden from the client): masks
                        // and captures are planned from its columns.
                        put(&mut self.to_upstream, b'D', |b| {
                            b.extend_from_slice(b"P");
                            put_cstr(b, portal.as_bytes());
                        });
                        self.pending.push_back(Expect::DescribePortal {
                            portal: portal.clone(),
                            statement: statement.clone().unwrap_or_default(),
                            hidden: true,
                        });
                    }
                }
                self.to_upstream.extend_from_slice(&step.raw);
                let bounded = run.bound.is_some();
                self.pending.push_back(Expect::Execute(Box::new(run)));
                if bounded {
                    self.guard_count(super::guard::Count::After);
                }
            }
            Kind::Bind => {
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending.push_back(Expect::Bind);
            }
            Kind::Describe(t, name) => {
                self.to_upstream.extend_from_slice(&step.raw);
                let expect = match t {
                    Target::Statement => Expect::DescribeStatement(name),
                    Target::Portal => Expect::DescribePortal {
                        statement: self
                            .portals
                            .get(&name)
                            .map(|p| p.statement.clone())
                            .unwrap_or_default(),
                        portal: name,
                        hidden: false,
                    },
                };
                self.pending.push_back(expect);
            }
            Kind::Close => {
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending.push_back(Expect::Close);
            }
            Kind::Sync => {
                self.skipping = false;
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending.push_back(Expect::Sync);
            }
            Kind::Flush | Kind::Copy => self.to_upstream.extend_from_slice(&step.raw),
            Kind::Terminate => {
                self.to_upstream.extend_from_slice(&step.raw);
                self.terminating = true;
            }
            Kind::FunctionCall => {
                let Some(d) = step.decisions.first() else {
                    return;
                };
                if !d.masks().is_empty() {
                    // Its result is one value with no column to plan a mask for.
                    let report = Report::error(
                        "42501",
                        "a mask applies to this function call, and the result of a function-call message cannot be masked; run it as SELECT",
                    );
                    self.refuse(step, report);
                    return;
                }
                let run = Run::new(d.clone(), Vec::new(), self.options.sample);
                self.to_upstream.extend_from_slice(&step.raw);
                self.pending
                    .push_back(Expect::Query(Box::new(QueryExchange {
                        runs: VecDeque::from([run]),
                        injected: None,
                        guarded: false,
                    })));
            }
            Kind::Drop => {}
        }
    }

    /// Refuses a step: a failing statement goes upstream in its place.
    fn refuse(&mut self, step: Step, report: Report) {
        let message = Some(report.message.clone());
        for d in &step.decisions {
            self.push_result(refused(d, message.clone()));
        }
        match &step.kind {
            // A function call is answered as a query is: an error, ReadyForQuery.
            Kind::Query | Kind::FunctionCall => self.inject_query(report),
            Kind::Parse(name) => {
                self.statements.remove(name);
                self.inject_extended(report);
            }
            Kind::Execute { .. } => self.inject_extended(report),
            _ => {}
        }
    }

    fn inject_query(&mut self, report: Report) {
        put(&mut self.to_upstream, b'Q', |b| put_cstr(b, BLOCKED_SQL));
        self.pending
            .push_back(Expect::Query(Box::new(QueryExchange {
                runs: VecDeque::new(),
                injected: Some(report),
                guarded: false,
            })));
    }

    fn inject_extended(&mut self, report: Report) {
        put(&mut self.to_upstream, b'P', |b| {
            put_cstr(b, b"gatehouse_blocked");
            put_cstr(b, BLOCKED_SQL);
            b.extend_from_slice(&0i16.to_be_bytes());
        });
        self.pending.push_back(Expect::Injected(report));
        self.skipping = true;
    }

    /// A reviewer decided the held step's current approval.
    pub(super) fn approval_decided(&mut self, outcome: ApprovalOutcome) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        let Some(decision) = held.step.decisions.get(held.waiting).cloned() else {
            return;
        };
        let resolution = match decision.after_approval(&outcome) {
            Ok(note) => {
                Report::notice(format!("gatehouse: {note}; running the statement"))
                    .encode(&mut self.to_client);
                Ok(())
            }
            Err(r) => Err(blocked(r.message, &decision)),
        };
        if let Some(slot) = held.step.approvals.get_mut(held.waiting) {
            *slot = Some(resolution);
        }
        self.ready.push_front(held.step);
    }

    /// The client cancelled the held statement (a `CancelRequest`): withdraw its
    /// approval and answer as PostgreSQL answers a cancelled statement.
    pub(super) async fn cancel_held(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        if let Some(d) = held.step.decisions.get(held.waiting).cloned()
            && let Err(error) = self
                .engine
                .withdraw_approval(&d, "cancelled_by_client")
                .await
        {
            tracing::warn!(message = "Cannot record a withdrawn approval.", session = %self.session.id, %error);
        }
        let report = Report::error("57014", "canceling statement due to user request")
            .with_detail("the statement was held for approval and never ran");
        if let Some(slot) = held.step.approvals.get_mut(held.waiting) {
            *slot = Some(Err(report));
        }
        self.ready.push_front(held.step);
    }

    /// Withdraws the held statement's approval when the session ends.
    pub(super) async fn withdraw_held(&mut self, reason: &str) {
        let Some(held) = self.held.take() else {
            return;
        };
        let Some(d) = held.step.decisions.get(held.waiting) else {
            return;
        };
        if let Err(error) = self.engine.withdraw_approval(d, reason).await {
            tracing::warn!(message = "Cannot record a withdrawn approval.", session = %self.session.id, %error);
        }
        self.push_result(refused(
            d,
            Some(format!(
                "not run: the session ended ({reason}) while it was held for approval"
            )),
        ));
    }
}

fn blocked(message: String, d: &Decision) -> Report {
    Report::error("42501", message).with_detail(format!(
        "refused by the Gatehouse policy (request {}{})",
        d.request,
        if d.rules.is_empty() {
            String::new()
        } else {
            format!(", rules: {}", d.rules.join(", "))
        }
    ))
}

fn all_masks(decisions: &[Arc<Decision>]) -> Vec<Arc<MaskSpec>> {
    let mut out: Vec<Arc<MaskSpec>> = Vec::new();
    for d in decisions {
        for m in d.masks() {
            if !out.iter().any(|x| Arc::ptr_eq(x, m)) {
                out.push(m.clone());
            }
        }
    }
    out
}
