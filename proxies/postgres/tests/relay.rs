//! The relay with real clients: psql through the gateway against a real PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gatehouse_events::payload::{Effect, Payload, RequestDetail, ResultStatus};
use support::{Harness, all, ok, starter};

#[test]
fn psql_runs_allowed_statements_and_refuses_blocked_ones_keeping_the_session() {
    let h = Harness::start(&starter());
    let out = h.psql(&["-At", "-c", "select 1 + 1 as two"]);
    assert_eq!(ok(&out).trim(), "2");

    // One psql session: a refused statement, then more work on the same connection.
    let out = h.psql(&[
        "-At",
        "-c",
        "create table app_orders (id int primary key, note text)",
        "-c",
        "insert into app_orders values (1, 'a'), (2, 'b')",
        "-c",
        "delete from app_orders",
        "-c",
        "select count(*) from app_orders",
    ]);
    let text = all(&out);
    assert!(
        text.contains("destructive statements need a change ticket"),
        "{text}"
    );
    assert!(text.contains("ERROR:  destructive"), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim_end().ends_with('2'),
        "rows survived and the session went on: {text}"
    );

    let stmts = h.statements();
    let kinds: Vec<&str> = stmts.iter().map(|(_, s)| s.kind.as_str()).collect();
    assert!(
        kinds.contains(&"create") && kinds.contains(&"delete"),
        "{kinds:?}"
    );
    let refused = h
        .events()
        .into_iter()
        .filter(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused))
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn one_blocked_statement_blocks_the_whole_string() {
    let h = Harness::start(&starter());
    ok(&h.psql(&["-c", "create table t (a int)"]));
    let out = h.psql(&[
        "-c",
        "insert into t values (1); drop table t; insert into t values (2)",
    ]);
    assert!(all(&out).contains("destructive"), "{}", all(&out));
    let out = h.psql(&["-At", "-c", "select count(*) from t"]);
    assert_eq!(ok(&out).trim(), "0", "nothing of the string ran");
}

#[test]
fn bad_tokens_are_refused() {
    let h = Harness::start(&starter());
    let out = h
        .psql_cmd("not-a-token")
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(all(&out).contains("not a valid token"), "{}", all(&out));
    // A token for another target, when the client names this one.
    let other = h.token_for("agent:test", "other-db", std::time::Duration::from_secs(60));
    let out = h
        .psql_cmd(&other)
        .args(["-c", "select 1"])
        .output()
        .unwrap();
    assert!(
        all(&out).contains("is for target `other-db`"),
        "{}",
        all(&out)
    );
}

/// Runs `f` with a tokio-postgres client through the gateway, on a thread and a
/// runtime of its own (the clients must not share the gateway's workers).
fn client_thread<T: Send + 'static>(
    dsn: String,
    f: impl AsyncFnOnce(tokio_postgres::Client) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            f(client).await
        })
    })
}

/// Long query strings cost time linear in their statements, are judged off the
/// threads that serve other sessions, and past `max_statements` are refused unjudged.
/// Splitting was quadratic and judging ran on the async workers: two 53 KiB strings
/// of `SELECT 1;` stalled every other session for seconds.
#[test]
fn long_query_strings_do_not_stall_other_sessions() {
    let h = Harness::start(&starter());
    let dsn = h.dsn(&h.token());
    // Another session answers `SELECT 1` every 20 ms, timing each, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let probe = client_thread(dsn.clone(), {
        let (stop, started) = (stop.clone(), started.clone());
        async move |c| {
            let mut times = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                c.simple_query("SELECT 1").await.unwrap();
                times.push(t.elapsed());
                started.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            times
        }
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let begin = Instant::now();
    // Three 53 KiB strings at once (more than the gateway's workers), under the
    // limit: judged and run in full.
    let big: Arc<str> = "SELECT 1;".repeat(5_900).into();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let big = big.clone();
            client_thread(dsn.clone(), async move |c| {
                c.simple_query(&big).await.map(|m| {
                    m.iter()
                        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                        .count()
                })
            })
        })
        .collect();
    // 20,000 statements: over the default limit, refused before any is judged.
    let over = client_thread(dsn.clone(), async move |c| {
        let refused = c.simple_query(&"SELECT 1;".repeat(20_000)).await;
        // The session is still usable.
        let after = c.simple_query("SELECT 2").await.map(|m| m.len());
        (refused, after)
    });
    for r in runs {
        assert_eq!(r.join().unwrap().unwrap(), 5_900);
    }
    let (refused, after) = over.join().unwrap();
    let busy = begin.elapsed();
    stop.store(true, Ordering::SeqCst);
    let times = probe.join().unwrap();
    let worst = times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "another session's SELECT 1: worst {worst:?} over {} queries, while the long strings took {busy:?}",
        times.len()
    );
    assert!(
        worst < Duration::from_secs(1),
        "another session's `SELECT 1` took {worst:?} while the long strings were judged ({busy:?}); {} probes",
        times.len()
    );
    let e = match refused {
        Ok(answer) => panic!(
            "the 20,000-statement string ran ({} messages back)",
            answer.len()
        ),
        Err(e) => e,
    };
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "54000", "{db:?}");
    assert!(
        db.message().contains("more than 10000 statements"),
        "{}",
        db.message()
    );
    assert!(after.is_ok(), "{after:?}");
    // The refusal is recorded: its request, the gateway's block, the refused result.
    let events = h.events();
    let request = events
        .iter()
        .find(|e| {
            matches!(&e.payload, Payload::RequestObserved(r)
                if matches!(&r.detail, RequestDetail::Postgres(p)
                    if p.parse_error.as_deref().is_some_and(|m| m.contains("more than 10000"))))
        })
        .expect("a request event for the refused string");
    assert!(events.iter().any(|e| matches!(&e.payload,
        Payload::DecisionMade(d) if d.request == Some(request.id) && d.effect == Effect::Block)));
    assert!(events.iter().any(|e| matches!(&e.payload,
        Payload::ResultObserved(r) if r.request == Some(request.id)
            && r.status == ResultStatus::Refused
            && r.code.as_deref() == Some("54000"))));
    // Nothing of it was judged statement by statement.
    let judged = events
        .iter()
        .filter(|e| {
            matches!(&e.payload, Payload::RequestObserved(r)
                if matches!(&r.detail, RequestDetail::Postgres(p) if p.statement_count > 10_000))
        })
        .count();
    assert_eq!(judged, 0);
}

/// Many clients logging in at once all get in, each within a short upstream timeout:
/// the gateway's SCRAM login to the upstream derives the credential's keys (PBKDF2)
/// once, off the async workers, not once per login on them (a debug build took 6 s
/// for 100 logins that way, and logins timed out). A wrong upstream password still
/// fails, keys cached or not.
#[test]
fn concurrent_logins_all_succeed_and_derive_the_upstream_keys_once() {
    const LOGINS: usize = 100;
    let options = support::Options {
        connect_timeout: Duration::from_secs(3),
        ..support::Options::default()
    };
    let h = Harness::start_with(&starter(), options, |_| {});
    let dsn = h.dsn(&h.token());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let begin = Instant::now();
    let logins = rt.block_on(async {
        let tasks: Vec<_> = (0..LOGINS)
            .map(|_| {
                let dsn = dsn.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let (client, conn) =
                        tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
                    let took = t.elapsed();
                    let conn = tokio::spawn(conn);
                    client.simple_query("SELECT 1").await?;
                    Ok::<_, tokio_postgres::Error>((took, client, conn))
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let all_in = begin.elapsed();
    let failed: Vec<String> = logins
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {LOGINS} logins failed: {failed:?}",
        failed.len()
    );
    let mut took: Vec<Duration> = logins.iter().map(|r| r.as_ref().unwrap().0).collect();
    took.sort();
    eprintln!(
        "{LOGINS} concurrent logins: median {:?}, slowest {:?}, all in after {all_in:?}",
        took[LOGINS / 2],
        took[LOGINS - 1]
    );
    assert_eq!(
        h.proxy.scram_derivations(),
        1,
        "one PBKDF2 for one credential"
    );
    drop(logins);
    // A wrong upstream password fails, the first time and with its keys cached.
    for _ in 0..2 {
        let token = h.token_for("agent:test", "wrong-password-db", Duration::from_secs(60));
        let out = h
            .psql_cmd(&token)
            .args(["-d", "wrong-password-db", "-c", "select 1"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            all(&out).contains("cannot open a session on target `wrong-password-db`"),
            "{}",
            all(&out)
        );
    }
    assert_eq!(h.proxy.scram_derivations(), 2);
    ok(&h.psql(&["-c", "select 1"]));
}
