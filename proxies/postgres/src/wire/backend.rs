//! Messages from the server: the few the proxy builds itself, and readers for those
//! it must look into (row descriptions, data rows, errors, command tags).

use bytes::BytesMut;

use super::frame::{put, put_cstr};
use super::{FrameError, Reader};

/// Error and notice severities the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
    /// Informational.
    Notice,
}

impl Severity {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Severity::Error => b"ERROR",
            Severity::Fatal => b"FATAL",
            Severity::Notice => b"NOTICE",
        }
    }
}

/// An `ErrorResponse` or `NoticeResponse` the proxy sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Severity.
    pub severity: Severity,
    /// SQLSTATE.
    pub code: &'static str,
    /// Primary message.
    pub message: String,
    /// Detail line.
    pub detail: Option<String>,
    /// Hint line.
    pub hint: Option<String>,
}

impl Report {
    /// An error with a SQLSTATE.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A query string holds more statements than the gateway judges in one message
    /// (SQLSTATE 54000, program_limit_exceeded).
    pub fn too_many_statements(limit: usize) -> Self {
        Self::error(
            "54000",
            format!(
                "gatehouse refuses a query string of more than {limit} statements, so none of it was run"
            ),
        )
        .with_hint("send fewer statements per query string, or raise `postgres.max_statements`")
    }

    /// A fatal error (the connection is closed after it).
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            ..Self::error(code, message)
        }
    }

    /// A notice.
    pub fn notice(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Notice,
            ..Self::error("00000", message)
        }
    }

    /// Adds a detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = if self.severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        };
        put(out, tag, |b| {
            for field in [b'S', b'V'] {
                b.extend_from_slice(&[field]);
                put_cstr(b, self.severity.as_bytes());
            }
            b.extend_from_slice(b"C");
            put_cstr(b, self.code.as_bytes());
            b.extend_from_slice(b"M");
            put_cstr(b, clean(&self.message).as_bytes());
            if let Some(d) = &self.detail {
                b.extend_from_slice(b"D");
                put_cstr(b, clean(d).as_bytes());
            }
            if let Some(h) = &self.hint {
                b.extend_from_slice(b"H");
                put_cstr(b, clean(h).as_bytes());
            }
            b.extend_from_slice(&[0]);
        });
    }
}

/// Text fields cannot hold NUL bytes.
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', " ").into()
    } else {
        s.into()
    }
}

/// `AuthenticationOk`, `AuthenticationCleartextPassword` (`code` 0 or 3).
pub fn authentication(out: &mut BytesMut, code: i32) {
    put(out, b'R', |b| b.extend_from_slice(&code.to_be_bytes()));
}

/// `BackendKeyData`.
pub fn backend_key(out: &mut BytesMut, pid: i32, secret: i32) {
    put(out, b'K', |b| {
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&secret.to_be_bytes());
    });
}

/// `ReadyForQuery`.
pub fn ready(out: &mut BytesMut, status: u8) {
    put(out, b'Z', |b| b.extend_from_slice(&[status]));
}

/// `NegotiateProtocolVersion`: the newest minor version we speak, and the options we
/// do not understand.
pub fn negotiate_protocol(out: &mut BytesMut, minor: i32, unknown: &[String]) {
    put(out, b'v', |b| {
        b.extend_from_slice(&minor.to_be_bytes());
        let n = i32::try_from(unknown.len()).unwrap_or(i32::MAX);
        b.extend_from_slice(&n.to_be_bytes());
        for o in unknown {
            put_cstr(b, o.as_bytes());
        }
    });
}

/// One column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name (as the server labels it).
    pub name: String,
    /// OID of the table the column comes from (0 for a computed value).
    pub table_oid: u32,
    /// Type OID.
    pub type_oid: u32,
    /// Format code (0 text, 1 binary); in a statement's description it is always 0.
    pub format: i16,
}

/// Reads a `RowDescription` body.
pub fn row_description(body: &[u8]) -> Result<Vec<Column>, FrameError> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.count16()?;
    let mut cols = Vec::with_capacity(n.min(body.len() / 19));
    for _ in 0..n {
        let name = String::from_utf8_lossy(r.cstr_bytes()?).into_owned();
        let table_oid = r.i32()? as u32;
        r.i16()?; // attribute number
        let type_oid = r.i32()? as u32;
        r.i16()?; // type size
        r.i32()?; // type modifier
        let format = r.i16()?;
        cols.push(Column {
            name,
            table_oid,
            type_oid,
            format,
        });
    }
    r.finish()?;
    Ok(cols)
}

/// The values of a `DataRow` body, in order (NULL is `None`).
pub fn data_row(body: &[u8]) -> Result<DataRow<'_>, FrameError> {
    let mut r = Reader::new(body, "DataRow");
    let n = r.count16()?;
    Ok(DataRow { r, left: n })
}

/// Iterator over the values of a `DataRow`.
#[derive(Debug, Clone)]
pub struct DataRow<'a> {
    r: Reader<'a>,
    left: usize,
}

impl DataRow<'_> {
    /// Number of values not read yet.
    pub fn len(&self) -> usize {
        self.left
    }

    /// True when every value was read.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'a> Iterator for DataRow<'a> {
    type Item = Result<Option<&'a [u8]>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.r.value())
    }
}

/// SQLSTATE and message of an `ErrorResponse` body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut r = Reader::new(body, "ErrorResponse");
    while let Ok(field) = r.u8() {
        if field == 0 {
            break;
        }
        let Ok(v) = r.cstr_bytes() else { break };
        match field {
            b'C' => code = String::from_utf8_lossy(v).into_owned(),
            b'M' => message = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// Rows counted by a `CommandComplete` tag (`SELECT 5`, `INSERT 0 3`, `COPY 7`).
pub fn command_rows(body: &[u8]) -> Option<u64> {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    let last = tag.rsplit(|&b| b == b' ').next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

/// Name and value of a `ParameterStatus` body.
pub fn parameter_status(body: &[u8]) -> Option<(&str, &str)> {
    let mut r = Reader::new(body, "ParameterStatus");
    let name = r.str().ok()?;
    let value = r.str().ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn reports_encode_and_decode() {
        let mut b = BytesMut::new();
        Report::error("42501", "no\0pe")
            .with_hint("ask")
            .encode(&mut b);
        assert_eq!(b[0], b'E');
        let (code, msg) = error_fields(&b[5..]);
        assert_eq!((code.as_str(), msg.as_str()), ("42501", "no pe"));
    }

    #[test]
    fn command_tags() {
        assert_eq!(command_rows(b"SELECT 5\0"), Some(5));
        assert_eq!(command_rows(b"INSERT 0 3\0"), Some(3));
        assert_eq!(command_rows(b"CREATE TABLE\0"), None);
    }
}
