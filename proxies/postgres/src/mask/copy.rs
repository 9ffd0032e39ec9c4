//! Masking of `COPY ... TO STDOUT` rows: PostgreSQL sends one row per `CopyData`
//! message (the binary header rides with the first row, the trailer alone), and the
//! `CopyOutResponse` gives the column count only, so column masks are placed by
//! position from the statement's lineage. Text and CSV fields are split, masked and
//! re-quoted; binary fields are replaced by the mask's text.

use std::borrow::Cow;
use std::sync::Arc;

use gatehouse_dsl::mask::{MaskSpec, Replacement};

use super::{Captured, MaskError, column_mask, patterns};
use crate::classify::lineage::{CopyFormat, CopyKind, Lineage};

/// The binary COPY signature.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// What to do with each column of one COPY.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    format: CopyFormat,
    /// Per column: its replacement, if masked whole.
    replace: Vec<Option<Replacement>>,
    /// Value patterns of the masks in force.
    patterns: Vec<Arc<MaskSpec>>,
    /// Binary: the header is still to come. CSV: the header line is.
    header: bool,
    /// Per column: the captures that read it (by lineage: `COPY (SELECT hostname AS
    /// h ...)` and `COPY infra.hosts` capture like `SELECT hostname`).
    captures: Vec<Vec<usize>>,
}

impl CopyPlan {
    /// Plans a COPY of `n` columns whose lineage is `lineage` under `masks`, feeding
    /// `captures`.
    pub fn new(
        lineage: &Lineage,
        n: usize,
        masks: &[Arc<MaskSpec>],
        captures: &[Captured],
    ) -> Self {
        let format = match lineage.rows() {
            Lineage::Copy(_, f) => f.clone(),
            // Not known to be a COPY we parsed (e.g. COPY in a prepared statement):
            // every column is opaque; the format is read from the data.
            _ => CopyFormat {
                kind: CopyKind::Text,
                delimiter: b'\t',
                quote: b'"',
                escape: b'"',
                header: false,
            },
        };
        let sources = lineage.columns(&[], n);
        let replace = sources
            .iter()
            .map(|s| masks.iter().find_map(|m| column_mask(m, None, Some(s))))
            .collect();
        let header = format.kind == CopyKind::Binary || format.header;
        let captures = sources
            .iter()
            .map(|s| {
                captures
                    .iter()
                    .enumerate()
                    // A column whose source is not known (`COPY t TO STDOUT` names no
                    // columns) may be the one asked for: it is captured too, so a
                    // whole-table dump cannot hide the host names.
                    .filter(|(_, c)| c.reads(s) || (s.opaque && c.reads_result_column()))
                    .map(|(j, _)| j)
                    .collect()
            })
            .collect();
        Self {
            captures,
            format,
            replace,
            patterns: masks
                .iter()
                .filter(|m| m.has_value_patterns())
                .cloned()
                .collect(),
            header,
        }
    }

    /// Masks one `CopyData` body and feeds `captured`; `None` when it passes unchanged.
    pub fn apply(
        &mut self,
        body: &[u8],
        captured: &mut [Captured],
    ) -> Result<Option<Vec<u8>>, MaskError> {
        if body.starts_with(SIGNATURE) && self.format.kind != CopyKind::Binary {
            // A binary copy we did not know of: its values are masked by position.
            self.format.kind = CopyKind::Binary;
            self.header = true;
        }
        let out = match self.format.kind {
            CopyKind::Binary => self.binary(body, captured)?,
            CopyKind::Text | CopyKind::Csv if self.header => {
                self.header = false;
                return Ok(None);
            }
            CopyKind::Text => self.text(body, captured)?,
            CopyKind::Csv => self.csv(body, captured)?,
        };
        Ok((out.as_slice() != body).then_some(out))
    }

    fn value<'v>(&self, i: usize, v: &'v str) -> Cow<'v, str> {
        if let Some(Some(r)) = self.replace.get(i) {
            return r.apply(v).into();
        }
        let mut out: Cow<'v, str> = v.into();
        for spec in &self.patterns {
            out = match out {
                Cow::Borrowed(b) => patterns(spec, b.into()),
                Cow::Owned(o) => patterns(spec, o.into()).into_owned().into(),
            };
        }
        out
    }

    /// Feeds the value sent for column `i` to the captures that read it.
    fn capture(&self, i: usize, v: &str, captured: &mut [Captured]) {
        for &j in self.captures.get(i).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = captured.get_mut(j) {
                c.add(v);
            }
        }
    }

    fn text(&self, body: &[u8], captured: &mut [Captured]) -> Result<Vec<u8>, MaskError> {
        let utf8 = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| MaskError::Encoding("COPY".into()))
        };
        let line = body.strip_suffix(b"\n").unwrap_or(body);
        let d = self.format.delimiter;
        let mut out = Vec::with_capacity(body.len());
        let mut fields: Vec<&[u8]> = Vec::new();
        let (mut start, mut i) = (0usize, 0usize);
        while let Some(&c) = line.get(i) {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == d {
                fields.push(line.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            i += 1;
        }
        fields.push(line.get(start..).unwrap_or_default());
        for (n, f) in fields.iter().enumerate() {
            if n > 0 {
                out.push(d);
            }
            if *f == b"\\N" {
                out.extend_from_slice(f);
                continue;
            }
            let raw = utf8(&unescape(f))?;
            let masked = self.value(n, &raw);
            self.capture(n, &masked, captured);
            if masked == raw {
                out.extend_from_slice(f);
            } else {
                escape(masked.as_bytes(), d, &mut out);
            }
        }
        if fields.len() != self.replace.len() && self.replace.iter().any(Option::is_some) {
            return Err(MaskError::Copy(format!(
                "a row has {} fields where {} columns were announced",
                fields.len(),
                self.replace.len()
            )));
        }
        out.push(b'\n');
        Ok(out)
    }

    fn csv(&self, body: &[u8], captured: &mut [Captured]) -> Result<Vec<u8>, MaskError> {
        let (d, q, e) = (self.format.delimiter, self.format.quote, self.format.escape);
        let line = body.strip_suffix(b"\n").unwrap_or(body);
        let mut fields: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut i = 0usize;
        loop {
            let mut value = Vec::new();
            let quoted = line.get(i) == Some(&q);
            if quoted {
                i += 1;
                loop {
                    match line.get(i) {
                        None => break,
                        Some(&c) if c == e && line.get(i + 1) == Some(&q) => {
                            value.push(q);
                            i += 2;
                        }
                        Some(&c) if c == e && e != q && line.get(i + 1) == Some(&e) => {
                            value.push(e);
                            i += 2;
                        }
                        Some(&c) if c == q => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
            }
            while let Some(&c) = line.get(i) {
                if c == d {
                    break;
                }
                value.push(c);
                i += 1;
            }
            fields.push((value, quoted));
            if line.get(i).is_none() {
                break;
            }
            i += 1;
        }
        if fields.len() != self.replace.len() && self.replace.iter().any(Option::is_some) {
            return Err(MaskError::Copy(format!(
                "a row has {} fields where {} columns were announced",
                fields.len(),
                self.replace.len()
            )));
        }
        let mut out = Vec::with_capacity(body.len());
        for (n, (v, quoted)) in fields.iter().enumerate() {
            if n > 0 {
                out.push(d);
            }
            let raw = std::str::from_utf8(v).map_err(|_| MaskError::Encoding("COPY".into()))?;
            let masked = if !quoted && v.is_empty() {
                // NULL.
                Cow::Borrowed(raw)
            } else {
                self.value(n, raw)
            };
            if *quoted || !v.is_empty() {
                self.capture(n, &masked, captured);
            }
            if masked == raw && !quoted {
                out.extend_from_slice(v);
                continue;
            }
            out.push(q);
            for &c in masked.as_bytes() {
                if c == q || c == e {
                    out.push(e);
                }
                out.push(c);
            }
            out.push(q);
        }
        out.push(b'\n');
        Ok(out)
    }

    fn binary(&mut self, body: &[u8], captured: &mut [Captured]) -> Result<Vec<u8>, MaskError> {
        let bad = || MaskError::Copy("a binary row does not decode".into());
        let mut out = Vec::with_capacity(body.len());
        let mut rest = body;
        if self.header {
            let ext = rest
                .get(15..)
                .and_then(array)
                .map(|b| u32::from_be_bytes(b) as usize)
                .ok_or_else(bad)?;
            let head = rest.get(..19 + ext).ok_or_else(bad)?;
            out.extend_from_slice(head);
            rest = rest.get(19 + ext..).ok_or_else(bad)?;
            self.header = false;
        }
        while !rest.is_empty() {
            let count = array(rest).map(i16::from_be_bytes).ok_or_else(bad)?;
            out.extend_from_slice(rest.get(..2).ok_or_else(bad)?);
            rest = rest.get(2..).ok_or_else(bad)?;
            if count < 0 {
                // The trailer.
                out.extend_from_slice(rest);
                break;
            }
            for n in 0..usize::try_from(count).unwrap_or(0) {
                let len = array(rest).map(i32::from_be_bytes).ok_or_else(bad)?;
                rest = rest.get(4..).ok_or_else(bad)?;
                let Ok(len) = usize::try_from(len) else {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                };
                let v = rest.get(..len).ok_or_else(bad)?;
                rest = rest.get(len..).ok_or_else(bad)?;
                let masked: Cow<'_, [u8]> = match self.replace.get(n) {
                    Some(Some(r)) => r.apply(&String::from_utf8_lossy(v)).into_bytes().into(),
                    // Values patterns apply to values that read as text; others
                    // (binary encodings of numbers, dates) pass.
                    _ => match std::str::from_utf8(v) {
                        Ok(s) if !self.patterns.is_empty() => match self.value(usize::MAX, s) {
                            Cow::Borrowed(_) => v.into(),
                            Cow::Owned(o) => o.into_bytes().into(),
                        },
                        _ => v.into(),
                    },
                };
                if let Ok(text) = std::str::from_utf8(&masked) {
                    self.capture(n, text, captured);
                }
                out.extend_from_slice(
                    &i32::try_from(masked.len())
                        .unwrap_or(i32::MAX)
                        .to_be_bytes(),
                );
                out.extend_from_slice(&masked);
            }
        }
        Ok(out)
    }
}

/// The first `N` bytes.
fn array<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.get(..N)?.try_into().ok()
}

/// A text-format field's value.
fn unescape(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0usize;
    while let Some(&c) = f.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = f.get(i + 1) else {
            break;
        };
        i += 2;
        out.push(match n {
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            // Octal and hex escapes keep their text: masked values are replaced
            // whole, and patterns see the escape (a rare form PostgreSQL does not
            // produce on output).
            other => other,
        });
    }
    out
}

/// A value in text format.
fn escape(v: &[u8], delimiter: u8, out: &mut Vec<u8>) {
    for &c in v {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c == delimiter => {
                out.push(b'\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use gatehouse_dsl::mask::{MaskItem, MaskTarget};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn plan(sql: &str, n: usize) -> CopyPlan {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let spec = Arc::new(MaskSpec {
            items: vec![MaskItem {
                target: MaskTarget::Columns(vec!["password".into()]),
                replacement: Replacement::With("****".into()),
            }],
        });
        CopyPlan::new(&crate::classify::lineage::of(&s[0]), n, &[spec], &[])
    }

    fn text(out: Option<Vec<u8>>) -> String {
        String::from_utf8(out.unwrap()).unwrap()
    }

    #[test]
    fn text_fields_are_split_past_escapes() {
        let mut p = plan("copy t (a, password, b) to stdout", 3);
        let row = [&br"x\ty\\"[..], b"\tsecret\t", br"\N", b"\n"].concat();
        let out = p.apply(&row, &mut []).unwrap();
        let want = [&br"x\ty\\"[..], b"\t****\t", br"\N", b"\n"].concat();
        assert_eq!(out.unwrap(), want);
        assert!(
            p.apply(b"a\tb\n", &mut []).is_err(),
            "a field count that does not match fails"
        );
    }

    #[test]
    fn csv_fields_are_unquoted_masked_and_requoted() {
        let mut p = plan("copy t (a, password) to stdout (format csv, header)", 2);
        assert_eq!(
            p.apply(b"a,password\n", &mut []).unwrap(),
            None,
            "the header passes"
        );
        let out = p
            .apply(b"\"x,\"\"y\",\"se,cr\"\"et\nline\"\n", &mut [])
            .unwrap();
        assert_eq!(text(out), "\"x,\"\"y\",\"****\"\n");
        let out = p.apply(b"plain,\n", &mut []).unwrap();
        assert_eq!(out, None, "NULL stays NULL");
    }

    #[test]
    fn binary_rows_are_masked_by_position() {
        let mut p = plan("copy t (a, password) to stdout (format binary)", 2);
        let mut first = SIGNATURE.to_vec();
        first.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        first.extend_from_slice(&2i16.to_be_bytes());
        first.extend_from_slice(&1i32.to_be_bytes());
        first.push(b'x');
        first.extend_from_slice(&6i32.to_be_bytes());
        first.extend_from_slice(b"secret");
        let out = p.apply(&first, &mut []).unwrap().unwrap();
        assert!(out.starts_with(SIGNATURE));
        assert!(out.ends_with(b"\0\0\0\x04****"));
        assert!(!out.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            p.apply(&(-1i16).to_be_bytes(), &mut []).unwrap(),
            None,
            "the trailer passes"
        );
    }
}

#[cfg(test)]
mod capture_tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use gatehouse_dsl::CaptureRequest;

    fn captured(col: &str) -> Captured {
        Captured::new(CaptureRequest {
            name: "s.recon.hosts".into(),
            source: "pg.result.column".into(),
            arg: col.into(),
            limit: 64,
            max_bytes: 4096,
        })
    }

    fn run(sql: &str, n: usize, rows: &[&[u8]]) -> Vec<String> {
        let s =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap();
        let mut caps = [captured("hostname")];
        let mut p = CopyPlan::new(&crate::classify::lineage::of(&s[0]), n, &[], &caps);
        for r in rows {
            assert_eq!(p.apply(r, &mut caps).unwrap(), None, "nothing is masked");
        }
        let [c] = caps;
        c.into_capture().values
    }

    #[test]
    fn copies_capture_by_lineage_and_whole_tables_capture_every_column() {
        assert_eq!(
            run(
                "copy (select role, hostname as h from t) to stdout",
                2,
                &[b"db\tdb-1.internal\n"]
            ),
            ["db-1.internal"]
        );
        assert_eq!(
            run(
                "copy (select hostname from t) to stdout with (format csv, header)",
                1,
                &[b"hostname\n", b"\"db-1,x\"\n", b"\n"]
            ),
            ["db-1,x"],
            "the header is skipped, NULL is not a value"
        );
        assert_eq!(
            run(
                "copy t to stdout",
                2,
                &[b"db\tdb-1.internal\n", b"\\N\tweb-1\n"]
            ),
            ["db", "db-1.internal", "web-1"]
        );
        assert!(run("copy (select role from t) to stdout", 1, &[b"db\n"]).is_empty());
    }
}
