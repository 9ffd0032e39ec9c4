//! The gateway's frontend codecs against `pgwire`'s message codecs (issue 23, item 4;
//! ADR 0003 and 0022): decoding what a pgbench transaction sends (extended: Parse,
//! Bind, Describe, Execute, Sync; simple: Query), a startup packet, and building an
//! ErrorResponse. `cargo bench -p gatehouse-proxy-postgres --bench pg_codecs`.

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_proxy_postgres::wire::backend::Report;
use gatehouse_proxy_postgres::wire::{frame, frontend, startup};
use pgwire::messages::{DecodeContext, Message, PgWireFrontendMessage, ProtocolVersion};
use std::hint::black_box;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// What `pgbench -S -M extended` sends per transaction.
fn extended_tx() -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0");
    p.extend_from_slice(&0i16.to_be_bytes());
    let mut b = vec![0u8, 0u8];
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&5i32.to_be_bytes());
    b.extend_from_slice(b"12345");
    b.extend_from_slice(&0i16.to_be_bytes());
    let mut out = msg(b'P', &p);
    out.extend(msg(b'B', &b));
    out.extend(msg(b'D', b"P\0"));
    out.extend(msg(b'E', b"\0\0\0\0\0"));
    out.extend(msg(b'S', b""));
    out
}

fn simple_tx() -> Vec<u8> {
    msg(
        b'Q',
        b"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;\0",
    )
}

fn startup_packet() -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for kv in [
        "user",
        "agent",
        "database",
        "app",
        "application_name",
        "pgbench",
        "client_encoding",
        "UTF8",
        "options",
        "-c work_mem=8MB",
    ] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = u32::try_from(body.len() + 4)
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    out.extend(body);
    out
}

fn ours(buf: &[u8]) -> usize {
    let mut off = 0;
    let mut n = 0;
    while let Some(rest) = buf.get(off..) {
        let Ok(Some(f)) = frame::peek(rest, 1 << 20) else {
            break;
        };
        let m = frontend::decode(f, rest);
        black_box(&m);
        n += usize::from(m.is_ok());
        off += f.wire_len;
    }
    n
}

fn theirs(buf: &[u8]) -> usize {
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    let mut b = BytesMut::from(buf);
    let mut n = 0;
    while let Ok(Some(m)) = PgWireFrontendMessage::decode(&mut b, &ctx) {
        black_box(&m);
        n += 1;
    }
    n
}

fn codecs(c: &mut Criterion) {
    let ext = extended_tx();
    let simple = simple_tx();
    assert_eq!(ours(&ext), 5);
    assert_eq!(theirs(&ext), 5);
    let mut g = c.benchmark_group("decode pgbench extended tx (P B D E S)");
    g.bench_function("gatehouse", |b| b.iter(|| ours(black_box(&ext))));
    g.bench_function("pgwire", |b| b.iter(|| theirs(black_box(&ext))));
    g.finish();
    let mut g = c.benchmark_group("decode pgbench simple tx (Q)");
    g.bench_function("gatehouse", |b| b.iter(|| ours(black_box(&simple))));
    g.bench_function("pgwire", |b| b.iter(|| theirs(black_box(&simple))));
    g.finish();

    let packet = startup_packet();
    let mut g = c.benchmark_group("decode startup packet");
    g.bench_function("gatehouse", |b| {
        b.iter(|| black_box(startup::decode(black_box(&packet)).is_ok()))
    });
    g.bench_function("pgwire", |b| {
        let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(packet.as_slice()));
            black_box(pgwire::messages::startup::Startup::decode(&mut buf, &ctx).is_ok())
        })
    });
    g.finish();

    let message = "blocked by the gateway policy: statement touches secrets";
    let detail = "refused by the Gatehouse policy (request 0193b2c4-5d6e-7f80-9a1b-2c3d4e5f6071, rules: no_secret_tables)";
    let mut g = c.benchmark_group("build ErrorResponse");
    g.bench_function("gatehouse", |b| {
        let mut out = BytesMut::with_capacity(512);
        b.iter(|| {
            out.clear();
            Report::error("42501", message)
                .with_detail(detail)
                .encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("pgwire", |b| {
        let mut out = BytesMut::with_capacity(512);
        b.iter(|| {
            out.clear();
            let e = pgwire::messages::response::ErrorResponse::new(vec![
                (b'S', "ERROR".to_owned()),
                (b'V', "ERROR".to_owned()),
                (b'C', "42501".to_owned()),
                (b'M', message.to_owned()),
                (b'D', detail.to_owned()),
            ]);
            let _ = e.encode(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
