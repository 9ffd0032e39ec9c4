//! A minimal simple-query client over an upstream connection the gateway opened for
//! itself: send one query, collect its rows as text.

use bytes::BytesMut;
use gatehouse_proxy_common::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::wire::{backend, frame};

/// Largest message accepted from the server while reading the catalog.
const MAX_MESSAGE: usize = 256 << 20;

/// Rows of text values (NULL is `None`).
pub type Rows = Vec<Vec<Option<String>>>;

/// Runs `sql` (one statement, simple protocol) and returns its rows, or the server's
/// error.
pub async fn rows(stream: &mut Stream, buf: &mut BytesMut, sql: &str) -> Result<Rows, String> {
    let mut out = BytesMut::new();
    frame::put(&mut out, b'Q', |b| frame::put_cstr(b, sql.as_bytes()));
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("cannot send a catalog query: {e}"))?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let f = loop {
            if let Some(f) = frame::peek(buf, MAX_MESSAGE).map_err(|e| e.to_string())? {
                break f;
            }
            let n = stream
                .read_buf(buf)
                .await
                .map_err(|e| format!("cannot read the catalog: {e}"))?;
            if n == 0 {
                return Err("the catalog connection closed".into());
            }
        };
        let msg = buf.split_to(f.wire_len);
        let body = f.body(&msg);
        match f.tag {
            b'D' => {
                let row = backend::data_row(body)
                    .map_err(|e| e.to_string())?
                    .map(|v| v.map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                rows.push(row);
            }
            b'E' => {
                let (code, message) = backend::error_fields(body);
                error.get_or_insert(format!("{message} (SQLSTATE {code})"));
            }
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}
