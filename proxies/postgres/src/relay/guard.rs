//! `limit rows N`: a statement runs inside a transaction block, and when it changed
//! more rows than allowed it is undone and refused.
//!
//! What a statement did is judged from what it did, whatever its text looks like:
//! the rows it changed are counted by PostgreSQL itself
//! (`pg_stat_xact_user_tables`: rows inserted, updated and deleted in the current
//! transaction, through writable CTEs, functions, triggers and cascades alike), read
//! before and after it. The command tag is checked too, so an exceeded simple
//! statement is stopped as soon as its tag arrives.
//!
//! Before a bounded statement the gateway sends a hidden `BEGIN` and reads the
//! count. PostgreSQL answers `BEGIN` with warning 25001 when the client already has a
//! transaction block open, so the gateway knows whose block it is:
//!
//! - **Its own** (the client was not in a transaction block): when the client's
//!   exchange ends (its `ReadyForQuery`, or its Sync's in the extended protocol), a
//!   hidden `COMMIT` when the bound held, a hidden `ROLLBACK` when it was exceeded or a
//!   statement failed; the client then sees `ReadyForQuery` idle, as after autocommit.
//! - **The client's**: nothing when the bound held. When it was exceeded, the block
//!   is put into the failed state (as after any error), so nothing of it can commit,
//!   and a `ROLLBACK TO SAVEPOINT` taken before the statement undoes it.
//!
//! The client gets `ERROR 54000` (in the extended protocol in place of the Execute's
//! command tag; in the simple protocol before `ReadyForQuery`). While a bound is being
//! judged no other client message goes upstream: a pipelined `COMMIT` must not commit
//! what is about to be undone.

use bytes::Bytes;

use super::client::Kind;
use super::run::Run;
use super::{Expect, Relay};
use crate::wire::backend::{Report, data_row};
use crate::wire::frame::{put, put_cstr};

/// SQLSTATE of a statement undone for changing more rows than allowed.
pub const EXCEEDED: &str = "54000";

/// Rows changed so far in the current transaction, by PostgreSQL's own count. Every
/// name is qualified: the session's `search_path` cannot redirect it.
const COUNT_SQL: &[u8] = b"SELECT pg_catalog.sum(n_tup_ins OPERATOR(pg_catalog.+) n_tup_upd OPERATOR(pg_catalog.+) n_tup_del) FROM pg_catalog.pg_stat_xact_user_tables";

/// Names of the gateway's own prepared statements (extended protocol).
const BEGIN_STATEMENT: &[u8] = b"gatehouse_guard_begin";
const COUNT_STATEMENT: &[u8] = b"gatehouse_guard_count";

/// Where a guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// A bounded statement's result is not known yet: nothing else goes upstream.
    Running,
    /// Extended protocol: the result is known; the client's messages up to its Sync
    /// go upstream.
    Decided,
    /// Extended protocol: the Sync went upstream; nothing more until its answer.
    Synced,
    /// The closing `COMMIT`/`ROLLBACK` went upstream; nothing more until its answer.
    Ending,
}

/// A bound being enforced.
pub(super) struct Guard {
    /// The block is the client's own (our BEGIN got warning 25001 or failed).
    pub theirs: bool,
    pub phase: Phase,
    /// The smallest bound of the statements judged under this guard.
    limit: u64,
    /// Rows changed in the transaction before the first bounded statement.
    baseline: Option<u64>,
    /// A bound was exceeded (the client has its error).
    exceeded: bool,
    /// Extended protocol (the block ends at the client's Sync).
    extended: bool,
    /// Extended protocol: the bounded Execute's command tag and run, held until the
    /// count after it is known.
    held: Option<(Bytes, Box<Run>, Option<u64>)>,
    /// Simple protocol: the client's `ReadyForQuery` status, held until the count.
    ready: Option<u8>,
}

/// What a hidden count is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Before,
    After,
}

/// The hidden statement that ends a guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    Commit,
    Rollback,
    /// Put the client's block into the failed state.
    Abort,
}

impl Closing {
    fn sql(self) -> &'static [u8] {
        match self {
            Closing::Commit => b"COMMIT",
            Closing::Rollback => b"ROLLBACK",
            Closing::Abort => super::client::BLOCKED_SQL,
        }
    }
}

/// The refusal of a statement that changed `rows`, more than `limit`.
pub fn exceeded(rows: u64, limit: u64) -> Report {
    Report::error(
        EXCEEDED,
        format!(
            "gatehouse undid the statement: it changed {rows} rows, more than the {limit} the policy allows (limit rows {limit})"
        ),
    )
    .with_hint("Change fewer rows per statement, or ask for the bound to be raised.")
}

/// The count in a hidden count's `DataRow` (NULL: nothing changed yet).
pub(super) fn count_of(body: &[u8]) -> Option<u64> {
    let mut row = data_row(body).ok()?;
    match row.next()?.ok()? {
        None => Some(0),
        Some(v) => std::str::from_utf8(v).ok()?.parse().ok(),
    }
}

/// Completions of a hidden statement in the extended protocol.
const HIDDEN_COMPLETIONS: u8 = 5;

/// A hidden statement in the extended protocol: Parse, Bind, Execute, then Close of
/// its statement and of its portal (a named portal lives to the end of the
/// transaction block). Five completions: `1`, `2`, `C`, `3`, `3`.
fn hidden_extended(out: &mut bytes::BytesMut, name: &[u8], sql: &[u8]) {
    put(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, sql);
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put(out, b'B', |b| {
        put_cstr(b, name);
        put_cstr(b, name);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
    });
    put(out, b'E', |b| {
        put_cstr(b, name);
        b.extend_from_slice(&0i32.to_be_bytes());
    });
    put(out, b'C', |b| {
        b.extend_from_slice(b"S");
        put_cstr(b, name);
    });
    put(out, b'C', |b| {
        b.extend_from_slice(b"P");
        put_cstr(b, name);
    });
}

impl Relay {
    /// True when the next ready step may be dispatched under the current guard.
    pub(super) fn guard_allows(&self, kind: &Kind) -> bool {
        match &self.guard {
            None => true,
            Some(g) => match g.phase {
                // COPY data feeds the statement being judged.
                Phase::Running => matches!(kind, Kind::Copy),
                Phase::Decided => true,
                Phase::Synced | Phase::Ending => false,
            },
        }
    }

    /// Notes that a step went upstream under the current guard.
    pub(super) fn guard_dispatched(&mut self, kind: &Kind) {
        if let Some(g) = &mut self.guard
            && g.phase == Phase::Decided
            && matches!(kind, Kind::Sync)
        {
            g.phase = Phase::Synced;
        }
    }

    /// Before a bounded statement goes upstream: opens the block (or, for a second
    /// bounded Execute before the Sync, keeps it) and reads the count before it.
    pub(super) fn guard_begin(&mut self, extended: bool, limit: u64) {
        if let Some(g) = &mut self.guard {
            g.phase = Phase::Running;
            g.limit = g.limit.min(limit);
            return;
        }
        self.guard = Some(Guard {
            theirs: false,
            phase: Phase::Running,
            limit,
            baseline: None,
            exceeded: false,
            extended,
            held: None,
            ready: None,
        });
        if extended {
            hidden_extended(&mut self.to_upstream, BEGIN_STATEMENT, b"BEGIN");
            self.pending.push_back(Expect::GuardBegin {
                remaining: HIDDEN_COMPLETIONS,
            });
            self.guard_count(Count::Before);
        } else {
            put(&mut self.to_upstream, b'Q', |b| put_cstr(b, b"BEGIN"));
            self.pending.push_back(Expect::GuardBegin { remaining: 0 });
            self.guard_count(Count::Before);
        }
    }

    /// Sends a hidden count (after the bounded statement: at once, pipelined).
    pub(super) fn guard_count(&mut self, what: Count) {
        let Some(g) = &self.guard else {
            return;
        };
        if g.extended {
            hidden_extended(&mut self.to_upstream, COUNT_STATEMENT, COUNT_SQL);
            // Make the server answer now rather than at the client's Sync.
            put(&mut self.to_upstream, b'H', |_| {});
            self.pending.push_back(Expect::GuardCount {
                what,
                remaining: HIDDEN_COMPLETIONS,
                value: None,
            });
        } else {
            put(&mut self.to_upstream, b'Q', |b| put_cstr(b, COUNT_SQL));
            self.pending.push_back(Expect::GuardCount {
                what,
                remaining: 0,
                value: None,
            });
        }
    }

    /// Extended protocol: the bounded Execute completed; its tag and run wait for the
    /// count after it.
    pub(super) fn guard_hold_tag(&mut self, tag: Bytes, run: Box<Run>, rows: Option<u64>) {
        if let Some(g) = &mut self.guard {
            g.held = Some((tag, run, rows));
        }
    }

    /// Extended protocol: the bounded statement failed: the rest up to the Sync.
    pub(super) fn guard_decided(&mut self) {
        if let Some(g) = &mut self.guard
            && g.extended
            && g.phase == Phase::Running
        {
            g.phase = Phase::Decided;
        }
    }

    /// A hidden count arrived (`None`: it failed, the block has failed).
    pub(super) fn guard_counted(&mut self, what: Count, value: Option<u64>) {
        let Some(g) = &mut self.guard else {
            return;
        };
        match what {
            Count::Before => g.baseline = value,
            Count::After => {
                let changed = match (g.baseline, value) {
                    (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                    _ => None,
                };
                let limit = g.limit;
                // A statement that failed changed nothing; one that ran but cannot be
                // counted is refused (fail closed).
                let failed = g.ready == Some(b'E');
                let report = match changed {
                    Some(c) if c > limit => Some(exceeded(c, limit)),
                    Some(_) => None,
                    None if failed => None,
                    None => Some(Report::error(
                        "58000",
                        "gatehouse cannot count the rows the statement changed, so it was undone",
                    )),
                };
                if let Some(r) = &report
                    && !g.exceeded
                {
                    g.exceeded = true;
                    if !g.extended {
                        r.encode(&mut self.to_client);
                    }
                }
                if g.extended {
                    g.phase = Phase::Decided;
                    if let Some((tag, mut run, rows)) = g.held.take() {
                        if let Some(report) = report {
                            report.encode(&mut self.to_client);
                            self.push_result(run.finish(
                                gatehouse_events::payload::ResultStatus::Refused,
                                rows,
                                Some((report.code.to_owned(), report.message)),
                            ));
                            // As after an error: the server's skipping is emulated
                            // until the client's Sync.
                            self.skipping = true;
                        } else {
                            self.to_client.extend_from_slice(&tag);
                            self.push_result(run.finish(
                                gatehouse_events::payload::ResultStatus::Ok,
                                rows,
                                None,
                            ));
                        }
                    }
                } else if let Some(status) = g.ready.take() {
                    self.guard_close(status);
                }
            }
        }
    }

    /// A simple-protocol bounded statement's tag already says it changed too much:
    /// stop it now (what follows in its query string is not shown).
    pub(super) fn guard_tag_exceeded(&mut self, rows: u64, limit: u64) -> Option<Report> {
        let g = self.guard.as_mut()?;
        if rows <= limit {
            return None;
        }
        let report = exceeded(rows, limit);
        if !g.exceeded {
            g.exceeded = true;
            report.encode(&mut self.to_client);
        }
        Some(report)
    }

    /// The `ReadyForQuery` that ends the guarded exchange (`simple`: the bounded
    /// query string's; otherwise the Sync's after the bounded Execute). Returns true
    /// when it is withheld: the client gets the one that ends the guard.
    pub(super) fn guard_ready(&mut self, status: u8, simple: bool) -> bool {
        let Some(g) = self.guard.as_mut() else {
            return false;
        };
        let ends = if simple {
            !g.extended && g.phase == Phase::Running && g.ready.is_none()
        } else {
            g.extended && g.phase == Phase::Synced
        };
        if !ends {
            return false;
        }
        if simple {
            // The count after it is on its way: decide then.
            g.ready = Some(status);
            return true;
        }
        self.guard_close(status)
    }

    /// Ends the block as the guard's outcome says. Returns true when a hidden
    /// statement went upstream (its `ReadyForQuery` is the client's).
    fn guard_close(&mut self, status: u8) -> bool {
        let Some(g) = self.guard.as_mut() else {
            return false;
        };
        let closing = if !g.theirs {
            Some(if g.exceeded || status == b'E' {
                Closing::Rollback
            } else {
                Closing::Commit
            })
        } else if g.exceeded && status != b'E' {
            Some(Closing::Abort)
        } else {
            None
        };
        match closing {
            None => {
                self.guard = None;
                self.tx_status = status;
                // Simple protocol: the withheld `ReadyForQuery`.
                super::super::wire::backend::ready(&mut self.to_client, status);
                true
            }
            Some(c) => {
                g.phase = Phase::Ending;
                put(&mut self.to_upstream, b'Q', |b| put_cstr(b, c.sql()));
                self.pending.push_back(Expect::GuardEnd { closing: c });
                true
            }
        }
    }

    /// The closing statement's `ReadyForQuery`, which the client gets.
    pub(super) fn guard_end(&mut self, status: u8) {
        self.guard = None;
        self.tx_status = status;
    }
}
