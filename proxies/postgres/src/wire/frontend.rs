//! Messages from the client after startup, decoded and validated once.

use super::{Frame, FrameError, Reader};

/// `Describe` and `Close` name a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

/// A client message the proxy understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `Q`: a simple query string (one or more statements).
    Query(&'a str),
    /// `P`: prepare `query` as statement `name` (empty: unnamed).
    Parse {
        /// Statement name.
        name: &'a str,
        /// SQL text.
        query: &'a str,
        /// Declared parameter type OIDs.
        param_types: usize,
    },
    /// `B`: bind parameters to a statement, creating a portal.
    Bind(Bind<'a>),
    /// `D`: describe a statement or portal.
    Describe(Target, &'a str),
    /// `E`: run a portal.
    Execute {
        /// Portal name.
        portal: &'a str,
        /// Row limit (0: all).
        max_rows: i32,
    },
    /// `C`: close a statement or portal.
    Close(Target, &'a str),
    /// `S`
    Sync,
    /// `H`
    Flush,
    /// `X`
    Terminate,
    /// `d`: COPY data.
    CopyData,
    /// `c`
    CopyDone,
    /// `f`
    CopyFail,
    /// `F`: the function-call protocol (large objects, `PQfn`).
    FunctionCall(FunctionCall<'a>),
}

/// A decoded `FunctionCall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall<'a> {
    /// The function's OID.
    pub oid: u32,
    /// Argument format codes (0 text, 1 binary); one code applies to all.
    pub arg_formats: Vec<i16>,
    /// Argument values (NULL is `None`).
    pub args: Vec<Option<&'a [u8]>>,
    /// The result's format code.
    pub result_format: i16,
}

/// A decoded `Bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name.
    pub portal: &'a str,
    /// Statement name.
    pub statement: &'a str,
    /// Parameter format codes (0 text, 1 binary); one code applies to all.
    pub param_formats: Vec<i16>,
    /// Parameter values (NULL is `None`).
    pub params: Vec<Option<&'a [u8]>>,
    /// Result column format codes; none means all text, one applies to all.
    pub result_formats: Vec<i16>,
}

impl Bind<'_> {
    /// The format of parameter `i`.
    pub fn param_format(&self, i: usize) -> i16 {
        match self.param_formats.as_slice() {
            [] => 0,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(0),
        }
    }
}

fn target(b: u8, what: &'static str) -> Result<Target, FrameError> {
    match b {
        b'S' => Ok(Target::Statement),
        b'P' => Ok(Target::Portal),
        _ => Err(FrameError::Malformed(what, "target is neither `S` nor `P`")),
    }
}

fn formats(r: &mut Reader<'_>) -> Result<Vec<i16>, FrameError> {
    let n = r.count16()?;
    let mut v = Vec::with_capacity(n.min(r.remaining() / 2));
    for _ in 0..n {
        let f = r.i16()?;
        if !(0..=1).contains(&f) {
            return Err(FrameError::Malformed("Bind", "format code is not 0 or 1"));
        }
        v.push(f);
    }
    Ok(v)
}

/// Decodes the frame at the start of `buf`.
pub fn decode<'a>(frame: Frame, buf: &'a [u8]) -> Result<Message<'a>, FrameError> {
    let body = frame.body(buf);
    let empty = |m: Message<'a>, what| {
        if body.is_empty() {
            Ok(m)
        } else {
            Err(FrameError::Malformed(what, "unexpected body"))
        }
    };
    match frame.tag {
        b'Q' => {
            let mut r = Reader::new(body, "Query");
            let q = r.str()?;
            r.finish()?;
            Ok(Message::Query(q))
        }
        b'P' => {
            let mut r = Reader::new(body, "Parse");
            let name = r.str()?;
            let query = r.str()?;
            let n = r.count16()?;
            r.bytes(n * 4)?;
            r.finish()?;
            Ok(Message::Parse {
                name,
                query,
                param_types: n,
            })
        }
        b'B' => {
            let mut r = Reader::new(body, "Bind");
            let portal = r.str()?;
            let statement = r.str()?;
            let param_formats = formats(&mut r)?;
            let n = r.count16()?;
            let mut params = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                params.push(r.value()?);
            }
            if param_formats.len() > 1 && param_formats.len() != params.len() {
                return Err(FrameError::Malformed("Bind", "format count does not match"));
            }
            let result_formats = formats(&mut r)?;
            r.finish()?;
            Ok(Message::Bind(Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }))
        }
        b'D' | b'C' => {
            let what = if frame.tag == b'D' {
                "Describe"
            } else {
                "Close"
            };
            let mut r = Reader::new(body, what);
            let t = target(r.u8()?, what)?;
            let name = r.str()?;
            r.finish()?;
            Ok(if frame.tag == b'D' {
                Message::Describe(t, name)
            } else {
                Message::Close(t, name)
            })
        }
        b'E' => {
            let mut r = Reader::new(body, "Execute");
            let portal = r.str()?;
            let max_rows = r.i32()?;
            r.finish()?;
            Ok(Message::Execute { portal, max_rows })
        }
        b'S' => empty(Message::Sync, "Sync"),
        b'H' => empty(Message::Flush, "Flush"),
        b'X' => empty(Message::Terminate, "Terminate"),
        b'c' => empty(Message::CopyDone, "CopyDone"),
        b'd' => Ok(Message::CopyData),
        b'f' => {
            let mut r = Reader::new(body, "CopyFail");
            r.cstr_bytes()?;
            r.finish()?;
            Ok(Message::CopyFail)
        }
        b'F' => {
            let mut r = Reader::new(body, "FunctionCall");
            let oid = r.i32()?.cast_unsigned();
            let arg_formats = formats(&mut r)?;
            let n = r.count16()?;
            let mut args = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                args.push(r.value()?);
            }
            if arg_formats.len() > 1 && arg_formats.len() != args.len() {
                return Err(FrameError::Malformed(
                    "FunctionCall",
                    "format count does not match",
                ));
            }
            let result_format = r.i16()?;
            if !matches!(result_format, 0 | 1) {
                return Err(FrameError::Malformed("FunctionCall", "bad result format"));
            }
            r.finish()?;
            Ok(Message::FunctionCall(FunctionCall {
                oid,
                arg_formats,
                args,
                result_format,
            }))
        }
        other => Err(FrameError::UnexpectedTag(char::from(other))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::wire::frame::peek;

    fn dec(bytes: &[u8]) -> Result<Message<'_>, FrameError> {
        let f = peek(bytes, 1 << 20).unwrap().unwrap();
        decode(f, bytes)
    }

    #[test]
    fn decodes_and_validates() {
        assert_eq!(
            dec(b"Q\0\0\0\x0dselect 1\0").unwrap(),
            Message::Query("select 1")
        );
        assert!(dec(b"Q\0\0\0\x0dselect 1x").is_err());
        assert!(dec(b"Q\0\0\0\x0eselect 1\0x").is_err());
        assert_eq!(dec(b"S\0\0\0\x04").unwrap(), Message::Sync);
        assert!(dec(b"S\0\0\0\x05x").is_err());
        assert!(matches!(
            dec(b"?\0\0\0\x04"),
            Err(FrameError::UnexpectedTag('?'))
        ));
        assert_eq!(
            dec(b"E\0\0\0\x09\0\0\0\0\0").unwrap(),
            Message::Execute {
                portal: "",
                max_rows: 0
            }
        );
        // Bind "" "s1", no formats, 1 param "42", 1 result format binary.
        let bind = b"B\0\0\0\x16\0s1\0\0\0\0\x01\0\0\0\x0242\0\x01\0\x01";
        let Message::Bind(b) = dec(bind).unwrap() else {
            panic!()
        };
        assert_eq!(b.statement, "s1");
        assert_eq!(b.params, vec![Some(&b"42"[..])]);
        assert_eq!(b.result_formats, vec![1]);
        // A parameter longer than the message.
        assert!(dec(b"B\0\0\0\x10\0s1\0\0\0\0\x01\0\0\0\x09").is_err());
    }
}
