//! Error and notice text under a mask: PostgreSQL quotes values in its messages (a
//! failed cast names the value it could not read), so a statement that runs under
//! a mask gets its `ErrorResponse` and `NoticeResponse` fields redacted — quoted
//! text in the message, hint, context and internal query replaced, the detail
//! withheld — while the SQLSTATE, severity and the rest are kept.

/// What replaces a quoted value.
const HIDDEN: &str = "***";

/// The detail of a report under a mask.
const DETAIL: &str = "gatehouse: detail withheld (the statement runs under a mask)";

/// The body of an `ErrorResponse` or `NoticeResponse` with its value-bearing fields
/// redacted; `None` when it does not decode (the caller sends a report of its own).
pub fn redact(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let (&field, after) = rest.split_first()?;
        if field == 0 {
            out.push(0);
            return Some(out);
        }
        let end = after.iter().position(|&b| b == 0)?;
        let value = after.get(..end)?;
        rest = after.get(end + 1..)?;
        out.push(field);
        match field {
            b'D' => out.extend_from_slice(DETAIL.as_bytes()),
            b'M' | b'H' | b'W' | b'q' => {
                out.extend_from_slice(quoted(&String::from_utf8_lossy(value)).as_bytes());
            }
            _ => out.extend_from_slice(value),
        }
        out.push(0);
    }
}

/// `text` with every quoted part (`"..."` or `'...'`) replaced; an unclosed quote
/// hides the rest.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' || c == '\'' {
            out.push_str(HIDDEN);
            if chars.by_ref().any(|x| x == c) {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn quoted_values_and_details_are_hidden() {
        let body = b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"hunter2\"\0Dthe value hunter2\0\0";
        let out = redact(body).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("C22P02"));
        assert!(text.contains("integer: \"***\""));
        assert_eq!(quoted("a 'b' c \"d"), "a '***' c \"***");
    }
}
