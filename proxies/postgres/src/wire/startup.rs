//! The startup phase: `SSLRequest`, `GSSENCRequest`, `CancelRequest` and
//! `StartupMessage`, which carry no type byte.

use super::{FrameError, Reader};

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// The client asks for TLS.
    Ssl,
    /// The client asks for GSSAPI encryption (refused).
    GssEnc,
    /// Cancel the query running on the session with this key.
    Cancel {
        /// Process id from `BackendKeyData`.
        pid: i32,
        /// Secret from `BackendKeyData`.
        secret: i32,
    },
    /// Start a session.
    Params {
        /// Protocol minor version the client asked for (3.minor).
        minor: i32,
        /// Parameters in order (`user`, `database`, `application_name`, ...).
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// The value of a startup parameter.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a whole startup packet (length included).
pub fn decode(packet: &[u8]) -> Result<Startup, FrameError> {
    let mut r = Reader::new(packet.get(4..).unwrap_or_default(), "StartupMessage");
    let code = r.i32()?;
    match code {
        SSL_REQUEST => {
            r.finish()?;
            Ok(Startup::Ssl)
        }
        GSSENC_REQUEST => {
            r.finish()?;
            Ok(Startup::GssEnc)
        }
        CANCEL_REQUEST => {
            let pid = r.i32()?;
            let secret = r.i32()?;
            // Protocol 3.2 allows longer keys; ours are always 4 bytes.
            r.finish()?;
            Ok(Startup::Cancel { pid, secret })
        }
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            loop {
                let k = r.str()?;
                if k.is_empty() {
                    break;
                }
                let v = r.str()?;
                params.push((k.to_owned(), v.to_owned()));
            }
            r.finish()?;
            Ok(Startup::Params {
                minor: v & 0xffff,
                params,
            })
        }
        _ => Err(FrameError::Malformed(
            "StartupMessage",
            "unsupported protocol version",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn startup_packets() {
        assert_eq!(decode(b"\0\0\0\x08\x04\xd2\x16\x2f").unwrap(), Startup::Ssl);
        let p = b"\0\0\0\x15\0\x03\0\0user\0bob\0x\0\0\0";
        let Startup::Params { minor, params } = decode(p).unwrap() else {
            panic!()
        };
        assert_eq!(minor, 0);
        assert_eq!(Startup::param(&params, "user"), Some("bob"));
        assert!(decode(b"\0\0\0\x0c\0\x03\0\0user\0").is_err());
        assert!(decode(b"\0\0\0\x08\0\x02\0\0").is_err());
    }
}
