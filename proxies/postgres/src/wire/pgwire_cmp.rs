//! Why the gateway keeps its own frontend codecs (ADR 0022, "pgwire, re-evaluated"):
//! on the inputs below, `pgwire`'s message decoders hand the judge a text that is not
//! what PostgreSQL will run, or refuse a message PostgreSQL accepts. Each case pins
//! both behaviours, so the ADR's reasons fail loudly if a pgwire release changes them.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use super::{frame, frontend};
use bytes::BytesMut;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn ours(buf: &[u8]) -> Result<String, String> {
    let f = frame::peek(buf, 1 << 20).unwrap().unwrap();
    match frontend::decode(f, buf) {
        Ok(frontend::Message::Query(q)) => Ok(q.to_owned()),
        Ok(other) => Ok(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn theirs(buf: &[u8]) -> Result<String, String> {
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    let mut b = BytesMut::from(buf);
    match PgWireFrontendMessage::decode(&mut b, &ctx) {
        Ok(Some(PgWireFrontendMessage::Query(q))) => Ok(q.query),
        Ok(other) => Ok(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn bytes_that_are_not_utf8_are_refused_not_replaced() {
    // A LATIN1 client names a table `geheimä`: PostgreSQL converts and runs it.
    let q = msg(b'Q', b"SELECT * FROM geheim\xe4\0");
    assert!(ours(&q).unwrap_err().contains("not UTF-8"));
    // pgwire judges a table the statement does not name.
    assert_eq!(theirs(&q).unwrap(), "SELECT * FROM geheim\u{fffd}");
}

#[test]
fn a_query_without_its_terminator_is_refused_not_emptied() {
    let q = msg(b'Q', b"DROP TABLE accounts");
    assert!(ours(&q).is_err());
    assert_eq!(theirs(&q).unwrap(), "");
}

#[test]
fn bytes_after_the_query_are_refused_not_ignored() {
    let q = msg(b'Q', b"SELECT 1\0DROP TABLE accounts\0");
    assert!(ours(&q).is_err());
    assert_eq!(theirs(&q).unwrap(), "SELECT 1");
}

#[test]
fn the_function_call_message_is_decoded() {
    // FunctionCall: oid 764 (lo_import), no args, text result.
    let mut body = 764u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let f = msg(b'F', &body);
    assert!(ours(&f).unwrap().starts_with("FunctionCall"));
    assert!(theirs(&f).is_err());
}
