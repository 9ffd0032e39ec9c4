//! Protocol coverage: COPY both ways, cancel, TLS, notices, pipelining, and malformed
//! frontend messages (a protocol error closes that connection only).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{ALLOW_ALL, Harness, Options, Postgres, all, ok, starter};

const COPY_RULES: &str = r#"
rule allow_all { when pg.statement.kind exists then allow }
rule mask_copy { when pg.statement.kind == copy then mask values matching /hunter[0-9]/ with "[redacted]" }
"#;

#[test]
fn psql_copy_in_and_out_with_value_masks() {
    let h = Harness::start(COPY_RULES);
    ok(&h.psql(&["-c", "create table t (id int, secret text)"]));
    let mut child = h
        .psql_cmd(&h.token())
        .args(["-v", "ON_ERROR_STOP=1", "-c", "\\copy t from stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("{i}\thunter{}\n", i % 10));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out).trim(), "COPY 5000");
    let out = ok(&h.psql(&[
        "-c",
        "\\copy (select * from t order by id limit 3) to stdout",
    ]));
    assert_eq!(out, "0\t[redacted]\n1\t[redacted]\n2\t[redacted]\n");
    // A failed COPY FROM (bad data) leaves the session usable.
    let mut child = h
        .psql_cmd(&h.token())
        .args(["-c", "\\copy t from stdin", "-c", "select count(*) from t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"x\ty\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = all(&out);
    assert!(
        text.contains("invalid input syntax for type integer") && text.contains("5000"),
        "{text}"
    );
}

#[test]
fn cancel_requests_reach_the_right_backend() {
    let h = Harness::start(ALLOW_ALL);
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, _conn) = Harness::connect(&dsn).await;
        let (other, _conn) = Harness::connect(&dsn).await;
        let token = client.cancel_token();
        let started = std::time::Instant::now();
        let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let e = sleeper.await.unwrap().unwrap_err();
        assert_eq!(e.as_db_error().unwrap().code().code(), "57014", "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // The other session was not cancelled.
        other.simple_query("select 1").await.unwrap();
    });
}

#[test]
fn tls_termination_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let options = Options {
        tls: Some(gatehouse_proxy_common::server_config(&cert, &key).unwrap()),
        ..Options::default()
    };
    let h = Harness::start_with(&starter(), options, |_| {});
    let out = h
        .psql_cmd(&h.token())
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &cert)
        .args(["-h", "localhost", "-c", "\\conninfo", "-c", "select 1"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("SSL connection (protocol: TLSv1."), "{text}");
}

#[test]
fn notices_and_pipelined_queries_pass_through() {
    let h = Harness::start(ALLOW_ALL);
    // A notification from the session itself carries the pid the client was given.
    let script = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("LISTEN chan")
conn.execute("NOTIFY chan, 'self'")
n = next(conn.notifies(timeout=5))
print(n.payload, n.pid == conn.info.backend_pid)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(h.dsn(&h.token()))
        .output()
        .unwrap();
    assert_eq!(ok(&out).trim(), "self True");
    let out = h.psql(&[
        "-c",
        "do $$ begin raise notice 'hello from plpgsql'; end $$",
    ]);
    assert!(
        all(&out).contains("NOTICE:  hello from plpgsql"),
        "{}",
        all(&out)
    );
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, _conn) = Harness::connect(&dsn).await;
        // tokio-postgres pipelines concurrent queries on one connection.
        let client = std::sync::Arc::new(client);
        let tasks: Vec<_> = (0..50i32)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move {
                    let r = c.query_one("select $1::int * 2", &[&i]).await.unwrap();
                    (i, r.get::<_, i32>(0))
                })
            })
            .collect();
        for t in tasks {
            let (i, v) = t.await.unwrap();
            assert_eq!(v, i * 2);
        }
        // A failing statement inside the pipeline does not disturb the others.
        let (a, b, c) = tokio::join!(
            client.query_one("select 1::int", &[]),
            client.query_one("select 1/0", &[]),
            client.query_one("select 3::int", &[])
        );
        assert_eq!(a.unwrap().get::<_, i32>(0), 1);
        assert!(b.is_err());
        assert_eq!(c.unwrap().get::<_, i32>(0), 3);
    });
}

/// Logs in over a raw socket and returns it ready for queries.
fn raw_login(h: &Harness) -> TcpStream {
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&[0, 3, 0, 0]);
    for kv in ["user", "agent", "database", "app-db"] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut msg = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&startup);
    s.write_all(&msg).unwrap();
    let mut buf = [0u8; 9];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], b"R\0\0\0\x08\0\0\0\x03");
    let token = h.token();
    let mut p = vec![b'p'];
    p.extend_from_slice(&((token.len() + 5) as u32).to_be_bytes());
    p.extend_from_slice(token.as_bytes());
    p.push(0);
    s.write_all(&p).unwrap();
    read_until(&mut s, b'Z');
    s
}

/// Reads messages until one with `tag`; returns every message read.
fn read_until(s: &mut TcpStream, tag: u8) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).unwrap();
        out.push((head[0], body));
        if head[0] == tag {
            return out;
        }
    }
}

/// Sends `bytes` and expects a FATAL protocol violation, then the end of the connection.
fn expect_protocol_error(h: &Harness, bytes: &[u8]) {
    let mut s = raw_login(h);
    s.write_all(bytes).unwrap();
    let msgs = read_until(&mut s, b'E');
    let (_, body) = msgs.last().unwrap();
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("FATAL") && text.contains("08P01"), "{text}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the connection stays closed");
}

#[test]
fn malformed_messages_close_that_connection_only() {
    let options = Options {
        max_message: 1 << 20,
        ..Options::default()
    };
    let h = Harness::start_with(ALLOW_ALL, options, |_| {});
    let cases: &[&[u8]] = &[
        b"Q\0\0\0\x02",                          // length below 4
        b"Q\xff\xff\xff\xf0",                    // negative length
        b"Q\x00\x20\x00\x00",                    // 2 MiB: over the limit
        b"?\0\0\0\x04",                          // unknown type
        b"p\0\0\0\x08abc\0",                     // a password message after login
        b"Q\0\0\0\x09abcde",                     // query string without terminator
        b"B\0\0\0\x0f\0s\0\0\0\0\x01\0\0\0\x09", // parameter longer than the message
        b"D\0\0\0\x06X\0",                       // Describe of neither S nor P
        b"S\0\0\0\x05x",                         // Sync with a body
        b"F\0\0\0\x0e\0\0\0\xb1\0\0\0\x01\0\0",  // FunctionCall cut short
        b"F\0\0\0\x0e\0\0\0\xb1\0\0\0\0\0\x07",  // FunctionCall result format 7
    ];
    for case in cases {
        expect_protocol_error(&h, case);
        // Other sessions keep working.
        assert_eq!(ok(&h.psql(&["-At", "-c", "select 7"])).trim(), "7");
    }
    // Truncated: a message cut off by a hang-up ends the session quietly.
    let mut s = raw_login(&h);
    s.write_all(b"Q\0\0\0\x20select").unwrap();
    drop(s);
    // Wrong order: a query instead of the password.
    let mut s = TcpStream::connect(h.addr).unwrap();
    let mut startup = vec![0, 3, 0, 0];
    startup.extend_from_slice(b"user\0agent\0\0");
    let mut m = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&startup);
    s.write_all(&m).unwrap();
    let mut auth = [0u8; 9];
    s.read_exact(&mut auth).unwrap();
    s.write_all(b"Q\0\0\0\x0dselect 1\0").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).contains("08P01"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // A bad startup packet.
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"\0\0\0\x08\0\x09\0\0").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(String::from_utf8_lossy(&rest).contains("08P01"));
    assert_eq!(ok(&h.psql(&["-At", "-c", "select 8"])).trim(), "8");
    let _ = Postgres::SERVICE_PASSWORD;
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn parse_bind_execute(sql: &str) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(sql.as_bytes());
    p.extend_from_slice(&[0, 0, 0]);
    let mut out = msg(b'P', &p);
    out.extend(msg(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    out.extend(msg(b'E', &[0, 0, 0, 0, 0]));
    out
}

#[test]
fn a_refused_execute_inside_a_pipeline_fails_like_a_server_error() {
    let h = Harness::start(&starter());
    ok(&h.pg.psql_app(&[
        "-c",
        "create table t (a int)",
        "-c",
        "insert into t values (1)",
    ]));
    let mut s = raw_login(&h);
    let mut batch = parse_bind_execute("select 1");
    batch.extend(parse_bind_execute("delete from t"));
    batch.extend(parse_bind_execute("select 2"));
    batch.extend(msg(b'S', b""));
    s.write_all(&batch).unwrap();
    let tags: Vec<u8> = read_until(&mut s, b'Z')
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(String::from_utf8_lossy(&tags), "12DC12EZ");
    // The session goes on.
    let mut next = parse_bind_execute("select count(*) from t");
    next.extend(msg(b'S', b""));
    s.write_all(&next).unwrap();
    let msgs = read_until(&mut s, b'Z');
    let tags: Vec<u8> = msgs.iter().map(|(t, _)| *t).collect();
    assert_eq!(String::from_utf8_lossy(&tags), "12DCZ");
    assert!(msgs[2].1.ends_with(b"1"), "{:?}", msgs[2]);
}

/// A FunctionCall of `oid` with int4 arguments in binary, result in binary.
fn function_call(oid: u32, args: &[i32]) -> Vec<u8> {
    let mut b = oid.to_be_bytes().to_vec();
    b.extend_from_slice(&1i16.to_be_bytes()); // one format code: binary
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&(args.len() as i16).to_be_bytes());
    for a in args {
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&a.to_be_bytes());
    }
    b.extend_from_slice(&1i16.to_be_bytes());
    msg(b'F', &b)
}

/// The function-call protocol: a call is resolved by OID in the target's catalog,
/// judged as a call of that function, and relayed when allowed; an OID the catalog
/// does not know is `unresolved`.
#[test]
fn function_calls_are_resolved_by_oid_judged_and_relayed() {
    let rules = r#"
default allow
rule no_int4mi { when pg.statement.functions intersects ["int4mi"] then block "subtraction is not allowed here" }
rule unresolved { when pg.statement.unresolved exists then block "unresolved: {pg.statement.unresolved}" }
"#;
    let h = Harness::start_with(rules, Options::default(), |_| {});
    let oid = |name: &str| -> u32 {
        let out = h.pg.psql_app(&[
            "-At",
            "-c",
            &format!("select '{name}(int4,int4)'::regprocedure::oid"),
        ]);
        ok(&out).trim().parse().unwrap()
    };
    let (plus, minus) = (oid("int4pl"), oid("int4mi"));
    let mut s = raw_login(&h);
    // Allowed: relayed, the server's answer comes back (binary int4 5).
    s.write_all(&function_call(plus, &[2, 3])).unwrap();
    let msgs = read_until(&mut s, b'Z');
    let v = msgs
        .iter()
        .find(|(t, _)| *t == b'V')
        .expect("a FunctionCallResponse");
    assert_eq!(v.1, [0, 0, 0, 4, 0, 0, 0, 5]);
    // Refused by the rule on its name: an error, then the session goes on.
    s.write_all(&function_call(minus, &[2, 3])).unwrap();
    let msgs = read_until(&mut s, b'Z');
    let e = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    let text = String::from_utf8_lossy(&e.1);
    assert!(
        text.contains("subtraction is not allowed here") && text.contains("42501"),
        "{text}"
    );
    assert!(!msgs.iter().any(|(t, _)| *t == b'V'));
    // An OID no function has: unresolved, refused by the policy.
    s.write_all(&function_call(4_000_000_000, &[1])).unwrap();
    let msgs = read_until(&mut s, b'Z');
    let e = msgs.iter().find(|(t, _)| *t == b'E').expect("an error");
    let text = String::from_utf8_lossy(&e.1);
    assert!(text.contains("not in the target's catalog"), "{text}");
    // The session still works.
    s.write_all(&function_call(plus, &[40, 2])).unwrap();
    let msgs = read_until(&mut s, b'Z');
    assert!(
        msgs.iter()
            .any(|(t, b)| *t == b'V' && b[4..] == 42i32.to_be_bytes())
    );
    let calls: Vec<_> = h
        .statements()
        .into_iter()
        .filter(|(_, p)| p.phase == "function_call")
        .collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls[0]
            .1
            .functions
            .iter()
            .any(|f| f == "pg_catalog.int4pl"),
        "{calls:?}"
    );
    assert_eq!(
        calls[0].1.params,
        [
            Some("\\x00000002".to_owned()),
            Some("\\x00000003".to_owned())
        ]
    );
    assert!(calls[2].1.unresolved.is_some());
}
