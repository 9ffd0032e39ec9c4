//! Result masking and captures, planned once per row description.
//!
//! For each column the plan lists what applies to it (a whole-column replacement,
//! value patterns) and which captures read it; a data row whose columns need nothing
//! is passed through as bytes. Binary values of text types are masked like text;
//! binary values of other types are rendered to text to test value patterns, and
//! a value that would have to be rewritten but cannot be re-encoded fails closed.

mod binary;
pub mod copy;
pub mod report;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::BytesMut;
use gatehouse_dsl::CaptureRequest;
use gatehouse_dsl::mask::{MaskSpec, MaskTarget, Replacement};
use gatehouse_events::payload::Capture;

use crate::classify::lineage::Source;
use crate::wire::FrameError;
use crate::wire::backend::{Column, data_row};
use crate::wire::frame::put;

/// A value that cannot be masked safely: the result is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A rule masks a binary column whose type the gateway cannot re-encode.
    #[error(
        "column `{column}` (type oid {oid}) is returned in binary format and must be masked; request text format for it"
    )]
    Binary {
        /// Column name.
        column: String,
        /// Type OID.
        oid: u32,
    },
    /// A text value is not UTF-8 and must be checked against value patterns.
    #[error(
        "column `{0}` holds text that is not UTF-8 and cannot be checked against the masking rules"
    )]
    Encoding(String),
    /// A COPY row cannot be masked (a format the gateway does not read).
    #[error("COPY TO STDOUT output cannot be masked: {0}")]
    Copy(String),
    /// The data row does not decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

#[derive(Debug, Clone)]
enum Step {
    Replace(Replacement),
    Patterns(Arc<MaskSpec>),
}

#[derive(Debug, Clone)]
struct ColumnPlan {
    name: String,
    oid: u32,
    binary: bool,
    steps: Vec<Step>,
    captures: Vec<usize>,
}

/// What to do with each column of one result.
#[derive(Debug, Clone)]
pub struct Plan {
    columns: Vec<ColumnPlan>,
    /// Some column needs masking.
    masks: bool,
    /// Some column is captured.
    captures: bool,
}

/// Values kept for one capture request.
#[derive(Debug, Clone)]
pub struct Captured {
    request: CaptureRequest,
    values: Vec<String>,
    bytes: usize,
    truncated: bool,
}

impl Captured {
    /// Starts collecting for `request`.
    pub fn new(request: CaptureRequest) -> Self {
        Self {
            request,
            values: Vec::new(),
            bytes: 0,
            truncated: false,
        }
    }

    /// Whether this capture reads a column whose value comes from `source` (a column
    /// of the name it asks for, or derived from one: `hostname AS h`, `lower(hostname)`).
    fn reads(&self, source: &Source) -> bool {
        &*self.request.source == "pg.result.column"
            && source
                .columns
                .iter()
                .any(|x| self.request.arg.eq_ignore_ascii_case(x))
    }

    /// Whether this capture reads result columns at all.
    fn reads_result_column(&self) -> bool {
        &*self.request.source == "pg.result.column"
    }

    fn add(&mut self, v: &str) {
        if self.values.iter().any(|x| x == v) {
            return;
        }
        let limit = usize::try_from(self.request.limit).unwrap_or(usize::MAX);
        let max_bytes = usize::try_from(self.request.max_bytes).unwrap_or(usize::MAX);
        if self.values.len() >= limit || self.bytes + v.len() > max_bytes {
            self.truncated = true;
            return;
        }
        self.bytes += v.len();
        self.values.push(v.to_owned());
    }

    /// The capture for the result event.
    pub fn into_capture(self) -> Capture {
        Capture {
            name: self.request.name.to_string(),
            source: self.request.arg.to_string(),
            values: self.values,
            truncated: self.truncated,
            // Resolved by the engine when the result is recorded.
            hosts: Vec::new(),
        }
    }
}

impl Plan {
    /// Plans masks and captures for `columns`; `formats` are the result formats
    /// requested at Bind (empty: from the description).
    pub fn new(
        columns: &[Column],
        formats: &[i16],
        masks: &[Arc<MaskSpec>],
        captures: &[Captured],
        sources: &[Source],
    ) -> Self {
        let mut any_mask = false;
        let mut any_capture = false;
        let cols = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let format = match formats {
                    [] => c.format,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(c.format),
                };
                let mut steps = Vec::new();
                for spec in masks {
                    if let Some(r) = column_mask(spec, Some(&c.name), sources.get(i)) {
                        steps.push(Step::Replace(r));
                    } else if spec.has_value_patterns() {
                        steps.push(Step::Patterns(spec.clone()));
                    }
                }
                let caps: Vec<usize> = captures
                    .iter()
                    .enumerate()
                    .filter(|(_, cap)| {
                        // By name, or by lineage: `hostname AS h`, `lower(hostname)`.
                        (&*cap.request.source == "pg.result.column"
                            && cap.request.arg.eq_ignore_ascii_case(&c.name))
                            || sources.get(i).is_some_and(|s| cap.reads(s))
                    })
                    .map(|(j, _)| j)
                    .collect();
                any_mask |= !steps.is_empty();
                any_capture |= !caps.is_empty();
                ColumnPlan {
                    name: c.name.clone(),
                    oid: c.type_oid,
                    binary: format == 1,
                    steps,
                    captures: caps,
                }
            })
            .collect();
        Self {
            columns: cols,
            masks: any_mask,
            captures: any_capture,
        }
    }

    /// True when data rows must be looked at (otherwise pass them through).
    pub fn active(&self) -> bool {
        self.masks || self.captures
    }

    /// Masks one `DataRow` body into `out` (a whole message) and feeds captures.
    /// Returns the number of values rewritten.
    pub fn apply(
        &self,
        body: &[u8],
        out: &mut BytesMut,
        captured: &mut [Captured],
    ) -> Result<u64, MaskError> {
        let row = data_row(body)?;
        let n = row.len();
        let mut masked = 0u64;
        let mut err = None;
        put(out, b'D', |b| {
            b.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
            for (i, value) in row.enumerate() {
                let value = match value {
                    Ok(v) => v,
                    Err(e) => {
                        err = Some(MaskError::from(e));
                        return;
                    }
                };
                let plan = self.columns.get(i);
                match (value, plan) {
                    (Some(v), Some(p)) if !p.steps.is_empty() || !p.captures.is_empty() => {
                        match p.value(v) {
                            Ok(m) => {
                                if m.changed {
                                    masked += 1;
                                }
                                for &j in &p.captures {
                                    if let Some(c) = captured.get_mut(j) {
                                        c.add(&m.text);
                                    }
                                }
                                put_value(b, Some(&m.out));
                            }
                            Err(e) => {
                                err = Some(e);
                                return;
                            }
                        }
                    }
                    (v, _) => put_value(b, v),
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(masked),
        }
    }
}

/// The replacement `spec` makes for a column named `name` (when the result names
/// it) whose value comes from `source` (when known): by its name, by a masked
/// column it derives from (the whole value when transformed), or whole when it may
/// hold any column and the spec masks some column.
pub fn column_mask(
    spec: &MaskSpec,
    name: Option<&str>,
    source: Option<&Source>,
) -> Option<Replacement> {
    let direct = source.is_none_or(|s| s.direct);
    let fit = |r: &Replacement| if direct { r.clone() } else { whole(r) };
    if let Some(r) = name.and_then(|n| spec.column(n)) {
        return Some(fit(r));
    }
    let source = source?;
    if let Some(r) = source.columns.iter().find_map(|c| spec.column(c)) {
        return Some(fit(r));
    }
    if source.opaque {
        return spec
            .items
            .iter()
            .find(|i| !matches!(i.target, MaskTarget::ValuesMatching(_)))
            .map(|i| whole(&i.replacement));
    }
    None
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ =
                    std::fmt::Write::write_fmt(&mut out, format_args!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A replacement for a whole value: a partial one (`keep last 4`) would show part
/// of a transformed value, which may be any part of the secret.
fn whole(r: &Replacement) -> Replacement {
    match r {
        Replacement::With(_) => r.clone(),
        Replacement::KeepLast(_) | Replacement::KeepFirst(_) => Replacement::With("****".into()),
    }
}

fn put_value(b: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(v) => {
            b.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
            b.extend_from_slice(v);
        }
    }
}

pub(crate) fn patterns<'v>(spec: &MaskSpec, value: Cow<'v, str>) -> Cow<'v, str> {
    let mut out = value;
    for item in &spec.items {
        if let MaskTarget::ValuesMatching(re) = &item.target
            && re.is_match(&out)
        {
            let replaced = re
                .replace_all(&out, |caps: &regex::Captures<'_>| {
                    caps.get(0)
                        .map_or_else(String::new, |m| item.replacement.apply(m.as_str()))
                })
                .into_owned();
            out = replaced.into();
        }
    }
    out
}

/// One value after masking.
struct Masked<'v> {
    /// The bytes to send.
    out: Cow<'v, [u8]>,
    /// Whether they differ from the upstream's.
    changed: bool,
    /// The text form, for captures (after masking).
    text: Cow<'v, str>,
}

impl ColumnPlan {
    /// The value after masking.
    fn value<'v>(&self, v: &'v [u8]) -> Result<Masked<'v>, MaskError> {
        let textual = !self.binary || binary::is_text(self.oid);
        if textual {
            let s = std::str::from_utf8(v).map_err(|_| MaskError::Encoding(self.name.clone()))?;
            let mut out: Cow<'v, str> = s.into();
            for step in &self.steps {
                out = match step {
                    // A JSON value stays JSON: the replacement as a JSON string.
                    Step::Replace(r) if matches!(self.oid, 114 | 3802) => {
                        json_string(&r.apply(&out)).into()
                    }
                    Step::Replace(r) => r.apply(&out).into(),
                    Step::Patterns(spec) => patterns(spec, out),
                };
            }
            let changed = out != s;
            return Ok(match out {
                Cow::Borrowed(b) => Masked {
                    out: Cow::Borrowed(b.as_bytes()),
                    changed,
                    text: Cow::Borrowed(b),
                },
                Cow::Owned(o) => Masked {
                    out: Cow::Owned(o.clone().into_bytes()),
                    changed,
                    text: Cow::Owned(o),
                },
            });
        }
        // A binary value of another type: it passes only when no step would change
        // its text form (it cannot be re-encoded masked).
        let refuse = || MaskError::Binary {
            column: self.name.clone(),
            oid: self.oid,
        };
        if self.steps.iter().any(|s| matches!(s, Step::Replace(_))) {
            return Err(refuse());
        }
        let text = match binary::render(self.oid, v) {
            Some(t) => t,
            None if self.steps.is_empty() => String::new(),
            None => return Err(refuse()),
        };
        let mut out: Cow<'_, str> = text.as_str().into();
        for step in &self.steps {
            if let Step::Patterns(spec) = step {
                out = patterns(spec, out);
            }
        }
        if out != text {
            return Err(refuse());
        }
        Ok(Masked {
            out: Cow::Borrowed(v),
            changed: false,
            text: Cow::Owned(text),
        })
    }
}

#[cfg(test)]
mod tests;
