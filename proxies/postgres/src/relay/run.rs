//! One statement's run: from forwarding to its completion, what the result event
//! records (rows, bytes, errors, timing, a masked sample, captures).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use gatehouse_core::engine::Decision;
use gatehouse_dsl::mask::MaskSpec;
use gatehouse_events::payload::{ResultObserved, ResultStatus};

use crate::mask::{Captured, MaskError, Plan};
use crate::wire::FrameError;
use crate::wire::backend::{Column, data_row};

/// Sampling limits for result events.
#[derive(Debug, Clone, Copy)]
pub struct SampleLimits {
    /// Rows kept.
    pub rows: usize,
    /// Bytes kept.
    pub bytes: usize,
}

/// A statement forwarded upstream whose result is being observed.
pub struct Run {
    /// The decision it ran under.
    pub decision: Arc<Decision>,
    started: Instant,
    rows: u64,
    bytes: u64,
    masked: u64,
    plan: Option<Plan>,
    /// Masks in force (a multi-statement string applies every statement's masks).
    masks: Vec<Arc<MaskSpec>>,
    captured: Vec<Captured>,
    sample: String,
    sample_rows: usize,
    limits: SampleLimits,
    /// Result formats requested at Bind (extended protocol).
    pub formats: Vec<i16>,
    /// COPY TO STDOUT in progress.
    pub copy_out: bool,
    /// What the result columns derive from.
    pub derived: crate::classify::Derived,
    /// Most rows the statement may change (`limit rows`).
    pub bound: Option<u64>,
    /// The sources of each COPY column, once the copy's columns are known.
    copy: Option<crate::mask::copy::CopyPlan>,
}

/// What became of one data row.
pub enum RowOutcome {
    /// Forward the upstream bytes unchanged.
    Pass,
    /// Forward the rewritten message (already appended to the output).
    Rewritten,
}

impl Run {
    /// A run under `decision`, with `masks` in force.
    pub fn new(decision: Arc<Decision>, masks: Vec<Arc<MaskSpec>>, limits: SampleLimits) -> Self {
        let captured = decision
            .captures()
            .iter()
            .cloned()
            .map(Captured::new)
            .collect();
        Self {
            decision,
            started: Instant::now(),
            rows: 0,
            bytes: 0,
            masked: 0,
            plan: None,
            masks,
            captured,
            sample: String::new(),
            sample_rows: 0,
            limits,
            formats: Vec::new(),
            copy_out: false,
            derived: crate::classify::Derived::default(),
            bound: None,
            copy: None,
        }
    }

    /// True when rows must be inspected: masks or captures apply.
    pub fn inspects_rows(&self) -> bool {
        !self.masks.is_empty() || !self.captured.is_empty()
    }

    /// True when a mask is in force: error and notice text is redacted.
    pub fn masked(&self) -> bool {
        !self.masks.is_empty()
    }

    /// True when every data row can be passed through as bytes without looking.
    pub fn passthrough(&self) -> bool {
        self.plan.as_ref().is_none_or(|p| !p.active()) && self.sample_rows >= self.limits.rows
    }

    /// Plans the rows of a result described by `columns`.
    pub fn describe(&mut self, columns: &[Column]) {
        let sources = if self.masks.is_empty() && self.captured.is_empty() {
            Vec::new()
        } else {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            self.derived.columns(&names, columns.len())
        };
        let plan = Plan::new(
            columns,
            &self.formats,
            &self.masks,
            &self.captured,
            &sources,
        );
        self.plan = Some(plan);
    }

    /// Counts a data row passed through without inspection.
    pub fn count_passed(&mut self, wire_len: usize) {
        self.rows += 1;
        self.bytes += wire_len as u64;
    }

    /// Counts a message of the result.
    pub fn count(&mut self, wire_len: usize) {
        self.bytes += wire_len as u64;
    }

    /// Handles one data row: masks it into `out` when needed.
    pub fn row(&mut self, body: &[u8], out: &mut BytesMut) -> Result<RowOutcome, MaskError> {
        self.rows += 1;
        let start = out.len();
        let outcome = match &self.plan {
            Some(p) if p.active() => {
                self.masked += p.apply(body, out, &mut self.captured)?;
                RowOutcome::Rewritten
            }
            _ => RowOutcome::Pass,
        };
        if self.sample_rows < self.limits.rows && self.sample.len() < self.limits.bytes {
            let sampled = match outcome {
                RowOutcome::Rewritten => out.get(start + 5..).unwrap_or_default(),
                RowOutcome::Pass => body,
            };
            let _ = self.sample_row(sampled);
        } else {
            self.sample_rows = self.limits.rows;
        }
        Ok(outcome)
    }

    /// Starts a COPY TO STDOUT described by a `CopyOutResponse` body.
    pub fn start_copy(&mut self, body: &[u8]) {
        self.copy_out = true;
        if self.masks.is_empty() && self.captured.is_empty() {
            return;
        }
        let n = body
            .get(1..3)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(0, |b| usize::from(u16::from_be_bytes(b)));
        self.copy = Some(crate::mask::copy::CopyPlan::new(
            &self.derived,
            n,
            &self.masks,
            &self.captured,
        ));
    }

    /// Masks one COPY TO STDOUT data message: column masks by position (text, CSV
    /// and binary formats), value patterns per value.
    pub fn copy_data(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, MaskError> {
        self.rows += 1;
        match &mut self.copy {
            None if self.masks.is_empty() && self.captured.is_empty() => Ok(None),
            None => Err(MaskError::Copy("the copy was not described".into())),
            Some(plan) => {
                let out = plan.apply(body, &mut self.captured)?;
                if out.is_some() {
                    self.masked += 1;
                }
                Ok(out)
            }
        }
    }

    fn sample_row(&mut self, body: &[u8]) -> Result<(), FrameError> {
        self.sample_rows += 1;
        if !self.sample.is_empty() {
            self.sample.push('\n');
        }
        for (i, v) in data_row(body)?.enumerate() {
            if i > 0 {
                self.sample.push('\t');
            }
            match v? {
                None => self.sample.push_str("NULL"),
                Some(v) => match std::str::from_utf8(v) {
                    Ok(s) => self.sample.push_str(s),
                    Err(_) => {
                        self.sample.push_str("\\x");
                        for b in v.iter().take(64) {
                            let _ = write!(self.sample, "{b:02x}");
                        }
                    }
                },
            }
            if self.sample.len() > self.limits.bytes {
                let mut end = self.limits.bytes;
                while !self.sample.is_char_boundary(end) {
                    end -= 1;
                }
                self.sample.truncate(end);
                self.sample_rows = self.limits.rows;
                break;
            }
        }
        Ok(())
    }

    /// The result event of a completed run (the run keeps its decision only).
    pub fn finish(
        &mut self,
        status: ResultStatus,
        rows: Option<u64>,
        error: Option<(String, String)>,
    ) -> ResultObserved {
        let (code, message) = error.map_or((None, None), |(c, m)| (Some(c), Some(m)));
        ResultObserved {
            request: Some(self.decision.request),
            status,
            rows: rows.or(Some(self.rows)),
            bytes: Some(self.bytes),
            code,
            message,
            duration_us: Some(self.started.elapsed().as_micros() as u64),
            masked: self.masked,
            captures: std::mem::take(&mut self.captured)
                .into_iter()
                .map(Captured::into_capture)
                .collect(),
            sample: (!self.sample.is_empty()).then(|| std::mem::take(&mut self.sample)),
        }
    }
}

/// The result event of a request that never ran.
pub fn refused(decision: &Decision, message: Option<String>) -> ResultObserved {
    ResultObserved {
        request: Some(decision.request),
        status: ResultStatus::Refused,
        code: Some("42501".into()),
        message,
        ..ResultObserved::default()
    }
}
