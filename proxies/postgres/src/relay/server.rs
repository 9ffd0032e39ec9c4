//! Upstream side: match each server message to what was forwarded, mask data rows,
//! replace the errors of substituted statements, and collect result events.

use gatehouse_events::payload::ResultStatus;

use super::run::{RowOutcome, Run};
use super::{Expect, Relay};
use crate::mask::MaskError;
use crate::wire::FrameError;
use crate::wire::backend::{Report, command_rows, error_fields, parameter_status, row_description};
use crate::wire::frame::{self, put};

/// Largest server message accepted (PostgreSQL's own limit is 1 GB).
const MAX_BACKEND: usize = 1 << 30;

/// What to do with one server message.
enum Fate {
    /// Forward it as received.
    Pass,
    /// Already handled (rewritten, replaced or swallowed).
    Done,
}

impl Relay {
    /// Handles every complete message in the upstream input buffer.
    pub(super) fn on_upstream(&mut self) -> Result<(), FrameError> {
        self.spinner.touch();
        // Bytes [0, pass) of the input are forwarded in one copy.
        let mut pass = 0usize;
        loop {
            let rest = self.uin.get(pass..).unwrap_or_default();
            let Some(f) = frame::peek(rest, MAX_BACKEND)? else {
                break;
            };
            // Fast path: a data row of a result that needs no inspection.
            if f.tag == b'D' && !self.swallow && self.passthrough_rows() {
                self.count_row(f.wire_len);
                pass += f.wire_len;
                continue;
            }
            if pass > 0 {
                let chunk = self.uin.split_to(pass);
                self.to_client.extend_from_slice(&chunk);
                pass = 0;
            }
            let msg = self.uin.split_to(f.wire_len);
            if let Fate::Pass = self.server_message(f.tag, &msg)? {
                self.to_client.extend_from_slice(&msg);
            }
        }
        if pass > 0 {
            let chunk = self.uin.split_to(pass);
            self.to_client.extend_from_slice(&chunk);
        }
        Ok(())
    }

    fn passthrough_rows(&self) -> bool {
        match self.pending.front() {
            Some(Expect::Execute(run)) => run.passthrough() && !run.copy_out,
            Some(Expect::Query(q)) => {
                q.injected.is_none()
                    && q.runs
                        .front()
                        .is_some_and(|r| r.passthrough() && !r.copy_out)
            }
            _ => false,
        }
    }

    fn count_row(&mut self, len: usize) {
        match self.pending.front_mut() {
            Some(Expect::Execute(run)) => run.count_passed(len),
            Some(Expect::Query(q)) => {
                if let Some(r) = q.runs.front_mut() {
                    r.count_passed(len);
                }
            }
            _ => {}
        }
    }

    /// Handles one server message (`msg` is the whole frame).
    fn server_message(&mut self, tag: u8, msg: &[u8]) -> Result<Fate, FrameError> {
        let body = msg.get(5..).unwrap_or_default();
        if tag == b'Z'
            && self.sql.catalog_dirty
            && let Some(catalog) = &self.options.catalog
        {
            // DDL has run: sessions that start now (a reconnection among them) read
            // the catalog again, defaults of databases and roles included.
            catalog.invalidate();
        }
        // Asynchronous messages can arrive at any time.
        match tag {
            b'N' if matches!(self.pending.front(), Some(Expect::GuardBegin { .. })) => {
                // Our BEGIN's warning: 25001 means the client's block is open.
                if error_fields(body).0 == "25001"
                    && let Some(g) = &mut self.guard
                {
                    g.theirs = true;
                }
                return Ok(Fate::Done);
            }
            b'N' if matches!(self.pending.front(), Some(Expect::GuardEnd { .. })) => {
                return Ok(Fate::Done);
            }
            b'N' if self.under_mask() => {
                self.redacted(b'N', body);
                return Ok(Fate::Done);
            }
            b'N' => return Ok(Fate::Pass),
            b'A' => {
                // NotificationResponse: the sender's pid. The client knows its own
                // session by the pid the gateway gave it.
                let (upstream, client) = self.options.pids;
                if body.get(..4) == Some(&upstream.to_be_bytes()[..]) {
                    put(&mut self.to_client, b'A', |b| {
                        b.extend_from_slice(&client.to_be_bytes());
                        b.extend_from_slice(body.get(4..).unwrap_or_default());
                    });
                    return Ok(Fate::Done);
                }
                return Ok(Fate::Pass);
            }
            b'S' => {
                if let Some((name, value)) = parameter_status(body)
                    && name == "standard_conforming_strings"
                {
                    self.sql.backslash_strings = value != "on";
                }
                return Ok(Fate::Pass);
            }
            _ => {}
        }
        if self.swallow {
            if tag == b'Z' {
                self.swallow = false;
                let guarded = matches!(self.pending.front(), Some(Expect::Query(q)) if q.guarded);
                self.finish_front_on_ready(body);
                let status = body.first().copied().unwrap_or(b'I');
                if guarded && self.guard_ready(status, true) {
                    return Ok(Fate::Done);
                }
                return Ok(Fate::Pass);
            }
            return Ok(Fate::Done);
        }
        let Some(mut front) = self.pending.pop_front() else {
            // Nothing expected (e.g. an error before a hang-up): pass it on.
            return Ok(Fate::Pass);
        };
        if let Expect::Execute(run) = &front
            && run.bound.is_some()
            && matches!(tag, b'C' | b'I' | b's')
            && let Expect::Execute(mut run) = front
        {
            // A bounded Execute: its tag waits for the count after it.
            run.count(msg.len());
            let rows = if tag == b'C' {
                command_rows(body)
            } else {
                None
            };
            self.guard_hold_tag(bytes::Bytes::copy_from_slice(msg), run, rows);
            return Ok(Fate::Done);
        }
        let (fate, keep) = match &mut front {
            Expect::Query(q) => self.query_message(q, tag, body, msg.len())?,
            Expect::Parse | Expect::Bind | Expect::Close => match tag {
                b'1' | b'2' | b'3' => (Fate::Pass, false),
                b'E' => {
                    self.extended_error(body);
                    (Fate::Pass, false)
                }
                _ => (Fate::Pass, true),
            },
            Expect::DescribeStatement(name) => match tag {
                b'T' | b'n' => {
                    self.learn_columns(name, tag, body)?;
                    (Fate::Pass, false)
                }
                b'E' => {
                    self.extended_error(body);
                    (Fate::Pass, false)
                }
                _ => (Fate::Pass, true),
            },
            Expect::DescribePortal {
                hidden, statement, ..
            } => {
                let hidden = *hidden;
                match tag {
                    b'T' | b'n' => {
                        let cols = self.learn_columns(statement, tag, body)?;
                        // The Execute that follows is planned from these columns.
                        if let (Some(cols), Some(Expect::Execute(run))) =
                            (cols, self.pending.front_mut())
                            && run.inspects_rows()
                        {
                            run.describe(&cols);
                        }
                        (if hidden { Fate::Done } else { Fate::Pass }, false)
                    }
                    b'E' => {
                        self.extended_error(body);
                        (Fate::Pass, false)
                    }
                    _ => (Fate::Pass, true),
                }
            }
            Expect::Execute(run) => {
                run.count(msg.len());
                match tag {
                    b'D' => match run.row(body, &mut self.to_client) {
                        Ok(RowOutcome::Pass) => (Fate::Pass, true),
                        Ok(RowOutcome::Rewritten) => (Fate::Done, true),
                        Err(e) => {
                            self.fail_closed(run, &e);
                            if !self.pending.iter().any(|e| matches!(e, Expect::Sync)) {
                                self.skipping = true;
                            }
                            (Fate::Done, false)
                        }
                    },
                    b'H' => {
                        run.start_copy(body);
                        (Fate::Pass, true)
                    }
                    b'd' if run.copy_out => match run.copy_data(body) {
                        Ok(None) => (Fate::Pass, true),
                        Ok(Some(masked)) => {
                            put(&mut self.to_client, b'd', |b| b.extend_from_slice(&masked));
                            (Fate::Done, true)
                        }
                        Err(e) => {
                            self.fail_closed(run, &e);
                            (Fate::Done, false)
                        }
                    },
                    b'C' | b'I' | b's' => {
                        let rows = if tag == b'C' {
                            command_rows(body)
                        } else {
                            None
                        };
                        self.push_result(run.finish(ResultStatus::Ok, rows, None));
                        (Fate::Pass, false)
                    }
                    b'E' if run.masked() => {
                        let body = crate::mask::report::redact(body).unwrap_or_default();
                        let err = error_fields(&body);
                        self.push_result(run.finish(ResultStatus::Error, None, Some(err)));
                        self.redacted(b'E', &body);
                        self.extended_error(&body);
                        (Fate::Done, false)
                    }
                    b'E' => {
                        if run.bound.is_some() {
                            self.guard_decided();
                        }
                        let err = error_fields(body);
                        self.push_result(run.finish(ResultStatus::Error, None, Some(err)));
                        self.extended_error(body);
                        (Fate::Pass, false)
                    }
                    _ => (Fate::Pass, true),
                }
            }
            Expect::Sync => {
                if tag == b'Z' {
                    let status = body.first().copied().unwrap_or(b'I');
                    self.tx_status = status;
                    if self.guard_ready(status, false) {
                        (Fate::Done, false)
                    } else {
                        (Fate::Pass, false)
                    }
                } else {
                    (Fate::Pass, true)
                }
            }
            Expect::GuardBegin { remaining } => match tag {
                b'E' => {
                    // The client's block has failed: its statement fails the same
                    // way; in the extended protocol the server now skips to the Sync,
                    // so the client gets this error in place of its own.
                    if let Some(g) = &mut self.guard {
                        g.theirs = true;
                    }
                    if *remaining > 0 {
                        self.extended_error(body);
                        self.guard_decided();
                        (Fate::Pass, false)
                    } else {
                        (Fate::Done, true)
                    }
                }
                b'Z' => (Fate::Done, false),
                b'1' | b'2' | b'C' | b'3' if *remaining > 0 => {
                    *remaining -= 1;
                    (Fate::Done, *remaining > 0)
                }
                _ => (Fate::Done, true),
            },
            Expect::GuardCount {
                what,
                remaining,
                value,
            } => match tag {
                b'D' => {
                    *value = super::guard::count_of(body);
                    (Fate::Done, true)
                }
                b'E' => {
                    // No count. In the extended protocol the server now skips to the
                    // client's Sync: so do we.
                    let what = *what;
                    if *remaining > 0 {
                        // What waited behind the count is skipped by the server.
                        self.extended_error(body);
                        self.guard_counted(what, None);
                        self.guard_decided();
                        // Before the statement: it never ran, and the client learns
                        // why. After it: the client gets our refusal instead.
                        let fate = if what == super::guard::Count::Before {
                            Fate::Pass
                        } else {
                            Fate::Done
                        };
                        (fate, false)
                    } else {
                        *remaining = u8::MAX;
                        (Fate::Done, true)
                    }
                }
                b'Z' => {
                    let v = if *remaining == u8::MAX { None } else { *value };
                    self.guard_counted(*what, v);
                    (Fate::Done, false)
                }
                b'1' | b'2' | b'C' | b'3' if *remaining > 0 && *remaining != u8::MAX => {
                    *remaining -= 1;
                    if *remaining == 0 {
                        let (what, v) = (*what, *value);
                        self.guard_counted(what, v);
                        (Fate::Done, false)
                    } else {
                        (Fate::Done, true)
                    }
                }
                _ => (Fate::Done, true),
            },
            Expect::GuardEnd { closing } => match tag {
                // A COMMIT that fails (a deferred constraint) is the client's error.
                b'E' if *closing == super::guard::Closing::Commit => (Fate::Pass, true),
                b'Z' => {
                    self.guard_end(body.first().copied().unwrap_or(b'I'));
                    (Fate::Pass, false)
                }
                _ => (Fate::Done, true),
            },
            Expect::Injected(report) => {
                if tag == b'E' {
                    report.encode(&mut self.to_client);
                    self.extended_error(body);
                    (Fate::Done, false)
                } else {
                    (Fate::Pass, true)
                }
            }
        };
        if keep {
            self.pending.push_front(front);
        }
        Ok(fate)
    }

    fn query_message(
        &mut self,
        q: &mut super::QueryExchange,
        tag: u8,
        body: &[u8],
        len: usize,
    ) -> Result<(Fate, bool), FrameError> {
        if let Some(run) = q.runs.front_mut() {
            run.count(len);
        }
        Ok(match tag {
            b'T' => {
                if let Some(run) = q.runs.front_mut()
                    && run.inspects_rows()
                {
                    run.describe(&row_description(body)?);
                }
                (Fate::Pass, true)
            }
            b'D' => match q.runs.front_mut() {
                Some(run) => match run.row(body, &mut self.to_client) {
                    Ok(RowOutcome::Pass) => (Fate::Pass, true),
                    Ok(RowOutcome::Rewritten) => (Fate::Done, true),
                    Err(e) => {
                        self.fail_closed(run, &e);
                        q.runs.pop_front();
                        self.finish_all(q, "not run: an earlier result was refused");
                        (Fate::Done, true)
                    }
                },
                None => (Fate::Pass, true),
            },
            b'H' => {
                if let Some(run) = q.runs.front_mut() {
                    run.start_copy(body);
                }
                (Fate::Pass, true)
            }
            b'd' => match q.runs.front_mut() {
                Some(run) if run.copy_out => match run.copy_data(body) {
                    Ok(None) => (Fate::Pass, true),
                    Ok(Some(masked)) => {
                        put(&mut self.to_client, b'd', |b| b.extend_from_slice(&masked));
                        (Fate::Done, true)
                    }
                    Err(e) => {
                        self.fail_closed(run, &e);
                        q.runs.pop_front();
                        (Fate::Done, true)
                    }
                },
                _ => (Fate::Pass, true),
            },
            b'C' | b'I' => {
                if let Some(mut run) = q.runs.pop_front() {
                    let rows = if tag == b'C' {
                        command_rows(body)
                    } else {
                        Some(0)
                    };
                    if let Some(limit) = run.bound
                        && let Some(report) = self.guard_tag_exceeded(rows.unwrap_or(0), limit)
                    {
                        self.push_result(run.finish(
                            ResultStatus::Refused,
                            rows,
                            Some((report.code.to_owned(), report.message.clone())),
                        ));
                        // What follows runs in the block being undone: not shown.
                        self.finish_all(q, "not run: an earlier statement was undone");
                        self.swallow = true;
                        return Ok((Fate::Done, true));
                    }
                    self.push_result(run.finish(ResultStatus::Ok, rows, None));
                }
                (Fate::Pass, true)
            }
            b'E' => {
                if let Some(report) = q.injected.take() {
                    report.encode(&mut self.to_client);
                    (Fate::Done, true)
                } else {
                    let masked = q.runs.front().is_some_and(Run::masked);
                    let redacted =
                        masked.then(|| crate::mask::report::redact(body).unwrap_or_default());
                    let body = redacted.as_deref().unwrap_or(body);
                    let err = error_fields(body);
                    if let Some(mut run) = q.runs.pop_front() {
                        self.push_result(run.finish(ResultStatus::Error, None, Some(err)));
                    }
                    self.finish_all(
                        q,
                        "not run: an earlier statement of the query string failed",
                    );
                    if masked {
                        self.redacted(b'E', body);
                        (Fate::Done, true)
                    } else {
                        (Fate::Pass, true)
                    }
                }
            }
            b'Z' => {
                let status = body.first().copied().unwrap_or(b'I');
                self.tx_status = status;
                self.finish_all(q, "");
                if q.guarded && self.guard_ready(status, true) {
                    (Fate::Done, false)
                } else {
                    (Fate::Pass, false)
                }
            }
            _ => (Fate::Pass, true),
        })
    }

    /// Whether the statement the server is answering runs under a mask.
    fn under_mask(&self) -> bool {
        match self.pending.front() {
            Some(Expect::Execute(run)) => run.masked(),
            Some(Expect::Query(q)) => q.runs.front().is_some_and(Run::masked),
            _ => false,
        }
    }

    /// Sends a report with its value-bearing fields redacted (one of our own when
    /// it does not decode).
    fn redacted(&mut self, tag: u8, body: &[u8]) {
        match crate::mask::report::redact(body).filter(|b| !b.is_empty()) {
            Some(b) => put(&mut self.to_client, tag, |out| out.extend_from_slice(&b)),
            None if tag == b'E' => Report::error(
                "XX000",
                "gatehouse: the server's error was withheld (the statement runs under a mask)",
            )
            .encode(&mut self.to_client),
            None => {}
        }
    }

    /// Remembers the result columns of a prepared statement from a Describe answer.
    fn learn_columns(
        &mut self,
        statement: &str,
        tag: u8,
        body: &[u8],
    ) -> Result<Option<Vec<crate::wire::backend::Column>>, FrameError> {
        let cols = if tag == b'T' {
            row_description(body)?
        } else {
            Vec::new()
        };
        if let Some(p) = self.statements.get_mut(statement)
            && p.columns.is_none()
        {
            let mut plain = cols.clone();
            for c in &mut plain {
                c.format = 0;
            }
            p.columns = Some(std::sync::Arc::new(plain));
        }
        Ok(Some(cols))
    }

    /// Records the runs of an exchange that PostgreSQL will not report on.
    fn finish_all(&mut self, q: &mut super::QueryExchange, why: &str) {
        while let Some(mut run) = q.runs.pop_front() {
            let r = if why.is_empty() {
                // A statement the server never reported on separately (a split
                // that disagreed with the server's, or a COPY that ended early).
                run.finish(ResultStatus::Ok, None, None)
            } else {
                run.finish(
                    ResultStatus::Error,
                    Some(0),
                    Some((String::new(), why.to_owned())),
                )
            };
            self.push_result(r);
        }
    }

    /// `ReadyForQuery` after a swallowed result: it ends whatever was in progress.
    fn finish_front_on_ready(&mut self, body: &[u8]) {
        self.tx_status = body.first().copied().unwrap_or(b'I');
        while let Some(front) = self.pending.pop_front() {
            match front {
                Expect::Query(mut q) => {
                    self.finish_all(&mut q, "not run: an earlier result was refused");
                    return;
                }
                Expect::Sync => return,
                Expect::Execute(mut run) => self.push_result(run.finish(
                    ResultStatus::Error,
                    Some(0),
                    Some((
                        String::new(),
                        "not run: an earlier result was refused".into(),
                    )),
                )),
                _ => {}
            }
        }
    }

    /// After an error in the extended protocol the server skips to the next Sync:
    /// so does what we expect.
    fn extended_error(&mut self, body: &[u8]) {
        let (code, _) = error_fields(body);
        while let Some(front) = self.pending.front() {
            if matches!(front, Expect::Sync) {
                return;
            }
            if let Some(Expect::Execute(mut run)) = self.pending.pop_front() {
                self.push_result(run.finish(
                    ResultStatus::Error,
                    Some(0),
                    Some((
                        code.clone(),
                        "not run: an earlier message of the pipeline failed".into(),
                    )),
                ));
            }
        }
        // No Sync forwarded yet: the upstream discards what comes until one is.
        self.skipping = true;
    }

    /// A result that cannot be masked safely: the client gets an error instead of
    /// the rest of it; upstream responses are dropped until `ReadyForQuery`.
    fn fail_closed(&mut self, run: &mut Run, e: &MaskError) {
        tracing::warn!(message = "A result could not be masked safely; refusing it.", session = %self.session.id, error = %e);
        Report::error("42501", format!("gatehouse: {e}")).encode(&mut self.to_client);
        self.push_result(run.finish(
            ResultStatus::Refused,
            None,
            Some(("42501".into(), e.to_string())),
        ));
        self.swallow = true;
    }
}
