//! One client session after login: both sockets served by one task.
//!
//! Client frames are decoded, classified and judged in segments (one log write per
//! segment), then enforced in order: forwarded, held for approval, or refused. A
//! refused statement is replaced upstream by a statement that fails to parse
//! (`GATEHOUSE BLOCKED`), so the server's own transaction and pipeline state stay
//! exactly as after a failed statement, and its error is replaced by ours.
//!
//! Upstream messages are matched to what was forwarded (`pending`), in order; data
//! rows pass through as bytes unless a mask or a capture needs them.

mod client;
mod ended;
mod guard;
pub mod run;
mod server;
pub mod spin;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gatehouse_core::engine::{ApprovalOutcome, Decision, Engine, Session};
use gatehouse_events::payload::{PgStatement, ResultObserved};
use gatehouse_events::{Event, EventId};
use gatehouse_proxy_common::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;

use crate::classify::{Cache, SessionSql};
use crate::wire::FrameError;
use crate::wire::backend::{Column, Report};

use run::{Run, SampleLimits};

/// Output buffered beyond this stops reading the other side (backpressure).
const HIGH_WATER: usize = 1 << 20;

/// Client frames queued behind a held statement before the client is no longer read.
const HELD_QUEUE: usize = 1024;

/// Client frames queued beyond this many bytes are planned and judged off the async
/// worker threads (see [`RelayOptions::heavy`]): short statements keep their fast
/// path, and a message that takes long to judge does not hold up other sessions.
pub const HEAVY_BYTES: usize = 16 * 1024;

/// Work (bytes read from either side; a result event counts as 1 KiB) a session does
/// before it lets the worker run other tasks and poll for I/O. A session whose
/// sockets stay ready never waits, and a worker polls the I/O driver only between
/// tasks or every 61 task polls: without this, two sessions streaming large
/// answers could keep both workers from noticing any other session's input.
const YIELD_WORK: usize = 256 * 1024;

/// Longest a result event waits for the session's next log write.
const RESULT_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Settings the relay needs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Largest client message accepted.
    pub max_message: usize,
    /// Result sample limits.
    pub sample: SampleLimits,
    /// The upstream backend's process id and the one the client was given:
    /// notifications from the session itself carry the client's.
    pub pids: (i32, i32),
    /// Longest busy poll for an answer while the proxy is otherwise idle (zero: never).
    pub busy_poll: std::time::Duration,
    /// The proxy's load, shared by its sessions (busy polling only when idle).
    pub load: Arc<spin::Load>,
    /// Changes when the client sends a cancel request for this session.
    pub cancel: watch::Receiver<u64>,

    /// Most statements judged in one query string; a longer one is refused.
    pub max_statements: usize,
    /// Permits to judge heavy segments (over [`HEAVY_BYTES`]) on a thread of their
    /// own, shared by the proxy's sessions: at most this many at once, so they leave
    /// CPU to the async workers that serve every other session.
    pub heavy: Arc<tokio::sync::Semaphore>,
    /// The target's catalog (views, functions, canonical names), when it is read.
    pub catalog: Option<Arc<crate::catalog::Catalog>>,
}

/// A prepared statement (extended protocol).
#[derive(Debug, Clone)]
struct Prepared {
    stmt: Arc<PgStatement>,
    text: Arc<str>,
    /// The `parse` event, once decided.
    event: Option<EventId>,
    /// Parsed in the segment being planned (its event id is not known yet).
    undecided: bool,
    derived: crate::classify::Derived,
    /// Result columns, once a Describe told them (formats left out: Bind sets them).
    columns: Option<Arc<Vec<Column>>>,
}

/// A portal (extended protocol).
#[derive(Debug, Clone)]
struct Portal {
    statement: String,
    params: Vec<Option<String>>,
    formats: Vec<i16>,
}

/// What the relay expects from upstream next, in order.
enum Expect {
    /// A simple query: responses until `ReadyForQuery`.
    Query(Box<QueryExchange>),
    Parse,
    Bind,
    DescribeStatement(String),
    DescribePortal {
        portal: String,
        statement: String,
        hidden: bool,
    },
    Execute(Box<Run>),
    Close,
    Sync,
    /// A statement substituted for a refused one: its error is replaced by ours.
    Injected(Report),
    /// The hidden `BEGIN` before a bounded statement (see [`guard`]): its answers
    /// are not shown; `remaining` counts the extended protocol's completions.
    GuardBegin {
        remaining: u8,
    },
    /// A hidden count of the rows the transaction changed so far.
    GuardCount {
        what: guard::Count,
        remaining: u8,
        value: Option<u64>,
    },
    /// The hidden statement that ends a guard's transaction block.
    GuardEnd {
        closing: guard::Closing,
    },
}

struct QueryExchange {
    runs: VecDeque<Run>,
    injected: Option<Report>,
    /// Runs under a `limit rows` guard: its `ReadyForQuery` ends the guard.
    guarded: bool,
}

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    /// The client terminated or hung up.
    Client,
    /// The upstream hung up.
    Upstream,
    /// The gateway closed the session (revoked, expired, shutdown).
    Closed(String),
    /// A protocol violation.
    Protocol(FrameError),
    /// A socket failed.
    Io(std::io::Error),
}

impl End {
    /// The `session_closed` reason.
    pub fn reason(&self) -> String {
        match self {
            End::Client => "client_closed".into(),
            End::Upstream => "upstream_closed".into(),
            End::Closed(r) => r.clone(),
            End::Protocol(_) => "protocol_error".into(),
            End::Io(_) => "connection_error".into(),
        }
    }
}

/// Second handles on the session's plain TCP sockets, for busy polling.
pub(crate) struct Sockets {
    client: Option<socket2::Socket>,
    upstream: Option<socket2::Socket>,
}

impl Sockets {
    /// Handles (`dup`s of the descriptors) when busy polling is on.
    fn of(client: &Stream, upstream: &Stream, busy_poll: std::time::Duration) -> Self {
        let handle = |s: &Stream| {
            (!s.is_tls() && !busy_poll.is_zero())
                .then(|| socket2::SockRef::from(s.tcp()).try_clone().ok())
                .flatten()
        };
        Self {
            client: handle(client),
            upstream: handle(upstream),
        }
    }
}

/// Which side a busy poll read from.
#[derive(Debug, Clone, Copy)]
enum Polled {
    Client,
    Upstream,
}

/// A step whose decision waits for a reviewer.
struct Held {
    step: client::Step,
    /// Index of the decision being waited for.
    waiting: usize,
}

/// The session state machine.
pub struct Relay {
    engine: Arc<Engine>,
    session: Arc<Session>,
    cache: Arc<Cache>,
    options: RelayOptions,
    sql: SessionSql,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    /// Result lineage of the session's cursors and SQL prepared statements.
    rows_of: crate::classify::lineage::Named,
    pending: VecDeque<Expect>,
    queue: VecDeque<Bytes>,
    /// Bytes of the frames in `queue`.
    queued: usize,
    ready: VecDeque<client::Step>,
    held: Option<Held>,
    /// A `limit rows` bound being enforced.
    guard: Option<guard::Guard>,
    /// Result events not yet written: they go out ahead of the session's next
    /// requests, in the same log write, or after [`RESULT_DELAY`] of quiet.
    results: Vec<Event>,
    /// A pending result carries captured values: write it once the client is answered.
    flush_now: bool,
    to_client: BytesMut,
    to_upstream: BytesMut,
    cin: BytesMut,
    uin: BytesMut,
    tx_status: u8,
    /// The upstream discards messages until the next Sync (after an error).
    skipping: bool,
    /// Drop upstream responses until `ReadyForQuery` (a result failed closed).
    swallow: bool,
    terminating: bool,
    spinner: spin::Spinner,
    /// Busy-poll reads land here first (allocated on the first one).
    scratch: Option<Vec<u8>>,
    /// Work done since the session last yielded (see [`YIELD_WORK`]).
    work: usize,
}

impl Relay {
    /// A relay for an authenticated session.
    pub fn new(
        engine: Arc<Engine>,
        session: Arc<Session>,
        cache: Arc<Cache>,
        options: RelayOptions,
        sql: SessionSql,
        leftover: BytesMut,
    ) -> Self {
        let spinner = spin::Spinner::new(options.load.clone(), options.busy_poll);
        Self {
            engine,
            session,
            cache,
            options,
            sql,
            statements: HashMap::new(),
            portals: HashMap::new(),
            rows_of: crate::classify::lineage::Named::default(),
            pending: VecDeque::new(),
            queue: VecDeque::new(),
            queued: 0,
            ready: VecDeque::new(),
            held: None,
            guard: None,
            results: Vec::new(),
            flush_now: false,
            to_client: BytesMut::with_capacity(64 * 1024),
            to_upstream: BytesMut::with_capacity(16 * 1024),
            cin: BytesMut::with_capacity(16 * 1024),
            uin: {
                let mut b = BytesMut::with_capacity(64 * 1024);
                b.extend_from_slice(&leftover);
                b
            },
            tx_status: b'I',
            skipping: false,
            swallow: false,
            terminating: false,
            spinner,
            scratch: None,
            work: 0,
        }
    }

    /// Serves the session until it ends.
    pub async fn run(
        mut self,
        client: Stream,
        upstream: Stream,
        shutdown: watch::Receiver<bool>,
    ) -> End {
        let sockets = Sockets::of(&client, &upstream, self.options.busy_poll);
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut ur, mut uw) = tokio::io::split(upstream);
        let end = self
            .serve(&mut cr, &mut cw, &mut ur, &mut uw, &shutdown, &sockets)
            .await;
        self.spinner.set_busy(false);
        // DDL the session ran (a database's or role's default settings among it) is
        // seen by the next session to start, not only by this session's next segment.
        if self.sql.catalog_dirty
            && let Some(catalog) = &self.options.catalog
        {
            catalog.invalidate();
        }
        // A statement held for approval never runs once its session is gone: withdraw
        // it, so that a reviewer's later approval finds nothing to run.
        self.withdraw_held(&end.reason()).await;
        if let End::Closed(reason) = &end {
            Report::fatal("57P01", format!("terminating connection: {reason}"))
                .encode(&mut self.to_client);
        }
        if let End::Protocol(e) = &end {
            Report::fatal("08P01", format!("protocol violation: {e}")).encode(&mut self.to_client);
        }
        let _ = cw.write_all(&self.to_client).await;
        let _ = cw.shutdown().await;
        // Tell the upstream we are done (an unterminated session logs a warning).
        let _ = uw.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = uw.shutdown().await;
        let _ = self.flush_results().await;
        end
    }

    async fn serve(
        &mut self,
        cr: &mut ReadHalf<Stream>,
        cw: &mut WriteHalf<Stream>,
        ur: &mut ReadHalf<Stream>,
        uw: &mut WriteHalf<Stream>,
        shutdown: &watch::Receiver<bool>,
        sockets: &Sockets,
    ) -> End {
        if !self.uin.is_empty()
            && let Err(e) = self.on_upstream()
        {
            return End::Protocol(e);
        }
        // Results without captures wait for the next requests' log write (one write
        // per statement instead of two), or for this timer.
        let mut quiet = Box::pin(tokio::time::sleep(RESULT_DELAY));
        let mut armed = false;
        // Session closed or gateway shutting down: watched by a task of its own, so
        // each pass of the loop polls an atomic flag instead of two watch channels.
        let ended = ended::Ended::watch(self.session.clone(), shutdown.clone());
        let engine = self.engine.clone();
        loop {
            if self.work >= YIELD_WORK {
                self.work = 0;
                tokio::task::yield_now().await;
            }
            if let Err(end) = self.process().await {
                return end;
            }
            // Answer the client first; record results while it reads. Results without
            // captures wait for the next request's write, unless this session has the
            // proxy to itself: then the CPU is idle while the client reads, and writing
            // them now takes their encoding off the next statement's critical path.
            let answered = self.to_client.is_empty() && self.to_upstream.is_empty();
            // In a cluster, captured values reach the cluster before the rows they
            // come from reach the client: the agent's next step, on any gateway, is
            // judged with them (ADR 0025).
            if self.flush_now && self.engine.clustered() && !self.flush_results().await {
                // The rows the values came from are not sent (fail closed).
                self.to_client.clear();
                return End::Closed(
                    "the cluster did not acknowledge the values this statement read".into(),
                );
            }
            if (answered && self.flush_now) || self.results.len() > 256 {
                let _ = self.flush_results().await;
            } else if answered && !self.results.is_empty() && self.spinner.alone() {
                self.options.load.count_idle_write();
                let _ = self.flush_results().await;
            }
            // Armed once per delay at most: a timer left running after a merged write
            // just writes whatever is pending when it fires.
            if !armed && !self.results.is_empty() {
                quiet
                    .as_mut()
                    .reset(tokio::time::Instant::now() + RESULT_DELAY);
                armed = true;
            }
            if self.terminating && self.to_upstream.is_empty() {
                return End::Client;
            }
            self.spinner.set_busy(!self.pending.is_empty());
            match self.busy_poll(sockets) {
                Some(Polled::Upstream) => {
                    if let Err(e) = self.on_upstream() {
                        return End::Protocol(e);
                    }
                    continue;
                }
                Some(Polled::Client) => {
                    if let Err(e) = self.frames() {
                        return End::Protocol(e);
                    }
                    continue;
                }
                None => {}
            }
            let held_decision: Option<Arc<Decision>> = self
                .held
                .as_ref()
                .and_then(|h| h.step.decisions.get(h.waiting).cloned());
            if held_decision.is_none() {
                // Cancels sent while nothing was held cancelled upstream statements.
                self.options.cancel.mark_unchanged();
            }
            // While a statement is held, the client is still read (into a bounded
            // queue), so that its leaving or a Terminate is seen at once.
            let read_client = if self.held.is_some() {
                self.cin.len() < HIGH_WATER && self.queue.len() < HELD_QUEUE
            } else {
                self.to_upstream.len() < HIGH_WATER && self.ready.is_empty() && !self.terminating
            };
            tokio::select! {
                biased;
                reason = ended.wait() => return End::Closed(reason),
                () = &mut quiet, if armed => {
                    armed = false;
                    let _ = self.flush_results().await;
                }
                outcome = wait(&engine, held_decision.as_deref()), if held_decision.is_some() => {
                    self.approval_decided(outcome);
                }
                changed = self.options.cancel.changed(), if held_decision.is_some() => {
                    if changed.is_ok() {
                        self.cancel_held().await;
                    }
                }
                r = uw.write_buf(&mut self.to_upstream), if !self.to_upstream.is_empty() => {
                    if let Err(e) = r { return End::Io(e); }
                }
                r = cw.write_buf(&mut self.to_client), if !self.to_client.is_empty() => {
                    if let Err(e) = r { return End::Io(e); }
                }
                r = ur.read_buf(&mut self.uin), if self.to_client.len() < HIGH_WATER => {
                    match r {
                        Ok(0) => {
                            let _ = cw.write_all(&self.to_client).await;
                            return End::Upstream;
                        }
                        Ok(n) => {
                            self.work += n;
                            if let Err(e) = self.on_upstream() { return End::Protocol(e); }
                        }
                        Err(e) => return End::Io(e),
                    }
                }
                r = cr.read_buf(&mut self.cin), if read_client => {
                    match r {
                        Ok(0) => return End::Client,
                        Ok(n) => {
                            self.work += n;
                            if let Err(e) = self.frames() { return End::Protocol(e); }
                        }
                        Err(e) => return End::Io(e),
                    }
                    if self.held.is_some() && self.queue.iter().any(|f| f.first() == Some(&b'X')) {
                        // Terminate while waiting for a reviewer: the client is leaving.
                        return End::Client;
                    }
                }
            }
        }
    }

    /// With nothing left to do but wait for one side, watches that side's socket for
    /// a moment before parking (see [`spin`]), and reads what arrived directly:
    /// going back through the runtime would park and wake a thread after all.
    /// Plain TCP only (a TLS record must go through the TLS session).
    fn busy_poll(&mut self, sockets: &Sockets) -> Option<Polled> {
        if !(self.to_client.is_empty()
            && self.to_upstream.is_empty()
            && self.queue.is_empty()
            && self.ready.is_empty()
            && self.held.is_none()
            && !self.terminating)
        {
            return None;
        }
        let (socket, side) = if self.pending.is_empty() {
            (sockets.client.as_ref()?, Polled::Client)
        } else {
            (sockets.upstream.as_ref()?, Polled::Upstream)
        };
        if !self.spinner.wait_readable(socket) {
            return None;
        }
        let scratch = self.scratch.get_or_insert_with(|| vec![0; 64 * 1024]);
        // An end of stream or an error is left for the runtime's read to report.
        match std::io::Read::read(&mut &*socket, scratch) {
            Ok(n) if n > 0 => {
                self.options.load.count_read();
                let got = scratch.get(..n)?;
                match side {
                    Polled::Client => self.cin.extend_from_slice(got),
                    Polled::Upstream => self.uin.extend_from_slice(got),
                }
                Some(side)
            }
            _ => None,
        }
    }

    /// Cuts complete client frames off the input.
    fn frames(&mut self) -> Result<(), FrameError> {
        self.spinner.touch();
        while let Some(f) = crate::wire::frame::peek(&self.cin, self.options.max_message)? {
            let raw = self.cin.split_to(f.wire_len).freeze();
            // Validate now: a malformed message closes the session before anything
            // after it is judged.
            crate::wire::frontend::decode(f, &raw)?;
            self.queued += raw.len();
            self.queue.push_back(raw);
        }
        Ok(())
    }

    /// Queues the result event of a finished (or refused) request.
    fn push_result(&mut self, result: ResultObserved) {
        let event = self.engine.result_event(&self.session, result);
        self.work += 1024;
        self.flush_now |= gatehouse_core::engine::has_captures(&event);
        self.results.push(event);
    }

    /// Records the queued results; false when that failed (logged).
    async fn flush_results(&mut self) -> bool {
        self.flush_now = false;
        if self.results.is_empty() {
            return true;
        }
        let recorded = match self.engine.record_results(&self.results).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(message = "Cannot record results.", session = %self.session.id, count = self.results.len(), %error);
                false
            }
        };
        self.results.clear();
        recorded
    }
}

async fn wait(engine: &Engine, decision: Option<&Decision>) -> ApprovalOutcome {
    match decision {
        Some(d) => engine.wait_for_approval(d).await,
        None => std::future::pending().await,
    }
}
