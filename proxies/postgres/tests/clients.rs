//! Real client drivers through the gateway: pgbench (simple, extended, prepared),
//! tokio-postgres (extended protocol, binary results), psycopg (server-side binding,
//! binary results, prepared statements).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::time::Duration;

use gatehouse_events::payload::{Payload, PgKind, RequestDetail, ResultStatus};
use support::{Harness, Postgres, all, ok, starter};

fn pgbench_init(pg: &Postgres) {
    let out = pg
        .client("pgbench")
        .args([
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "gatehouse_svc",
            "app",
        ])
        .env("PGPASSWORD", Postgres::SERVICE_PASSWORD)
        .output()
        .unwrap();
    ok(&out);
}

fn setup_users(pg: &Postgres) {
    ok(&pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table users (id bigint primary key, email text, password text, card text, hostname text, created date default '2026-01-02')",
        "-c",
        "insert into users values (1, 'a@example.com', 'hunter2', '4111 1111 1111 1111', 'db-1.internal'), (2, 'b@example.com', 's3cret', 'none', 'bastion.internal')",
    ]));
}

#[test]
fn pgbench_select_only_in_every_protocol_mode() {
    let h = Harness::start_with(&starter(), support::Options::default(), pgbench_init);
    for mode in ["simple", "extended", "prepared"] {
        let out =
            h.pg.client("pgbench")
                .args([
                    "-n",
                    "-S",
                    "-M",
                    mode,
                    "-c",
                    "2",
                    "-t",
                    "100",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &h.addr.port().to_string(),
                    "-U",
                    "agent",
                    "app-db",
                ])
                .env("PGPASSWORD", h.token())
                .env("PGSSLMODE", "disable")
                .output()
                .unwrap();
        let text = ok(&out);
        assert!(
            text.contains("number of transactions actually processed: 200/200"),
            "{mode}: {text}"
        );
    }
    // Every execution is an event: 600 selects (+ pgbench's own queries).
    let stmts = h.statements();
    let selects = stmts
        .iter()
        .filter(|(c, s)| s.kind == PgKind::Select && c.contains("pgbench_accounts"))
        .count();
    assert!(selects >= 600, "{selects}");
    // Extended mode (unnamed statements parsed and executed together): one event per
    // execution; prepared mode: one parse event per client, then executions.
    let parses = stmts
        .iter()
        .filter(|(c, s)| s.phase == "parse" && c.contains("pgbench_accounts"))
        .count();
    assert_eq!(parses, 2, "only the two prepared-mode clients' Parse");
    // Prepared mode: executions refer to the parse event.
    let exec = stmts
        .iter()
        .find(|(_, s)| {
            s.phase == "execute" && s.prepared_name.as_deref().is_some_and(|n| !n.is_empty())
        })
        .unwrap();
    assert!(exec.1.prepared_event.is_some(), "{exec:?}");
    assert_eq!(exec.1.params.len(), 1);
}

#[test]
fn tokio_postgres_extended_protocol_binary_results_and_masking() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup_users);
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, _conn) = Harness::connect(&dsn).await;
        let rows = client
            .query(
                "select id, email, password, hostname from users where id = $1",
                &[&1i64],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let id: i64 = rows[0].get(0);
        let password: &str = rows[0].get(2);
        assert_eq!((id, password), (1, "****"));
        let stmt = client
            .prepare("select email from users order by id")
            .await
            .unwrap();
        for _ in 0..3 {
            let rows = client.query(&stmt, &[]).await.unwrap();
            assert_eq!(rows.len(), 2);
        }
        // Card numbers in text columns are masked by value, keeping the last four.
        let row = client
            .query_one("select card from users where id = 1", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "**** **** **** 1111");
        // Blocked in the extended protocol: error 42501, then the connection goes on.
        let e = client.execute("delete from users", &[]).await.unwrap_err();
        let db = e.as_db_error().unwrap();
        assert_eq!(db.code().code(), "42501");
        assert!(db.message().contains("destructive"), "{db:?}");
        let n: i64 = client
            .query_one("select count(*) from users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        // A transaction with an error inside: the usual semantics.
        client.batch_execute("begin").await.unwrap();
        assert!(client.execute("drop table users", &[]).await.is_err());
        let e = client.query("select 1", &[]).await.unwrap_err();
        assert_eq!(e.as_db_error().unwrap().code().code(), "25P02", "{e}");
        client.batch_execute("rollback").await.unwrap();
        let n: i64 = client
            .query_one("select count(*) from users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
    });
    let results: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::ResultObserved(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        results
            .iter()
            .any(|r| r.masked > 0 && r.status == ResultStatus::Ok)
    );
    let logged = serde_json::to_string(&h.events()).unwrap();
    assert!(
        !logged.contains("hunter2"),
        "a masked value reached the log"
    );
    assert!(
        !logged.contains(Postgres::SERVICE_PASSWORD),
        "the upstream password reached the log"
    );
}

/// One client alone: the relay reads answers and next statements by busy polling
/// (ADR 0009), and every answer is still the right one and every statement logged.
/// With `busy_poll` zero it never does.
#[test]
fn a_lone_session_is_served_by_busy_polling_and_answers_stay_right() {
    for (budget, polls) in [(Duration::from_millis(1), true), (Duration::ZERO, false)] {
        let options = support::Options {
            busy_poll: budget,
            ..Default::default()
        };
        let h = Harness::start_with(&starter(), options, setup_users);
        let dsn = h.dsn(&h.token());
        h.rt.block_on(async {
            let (client, _conn) = Harness::connect(&dsn).await;
            let stmt = client
                .prepare("select $1::int8 * 3 + id from users where id = 1")
                .await
                .unwrap();
            for i in 0..300i64 {
                let row = client.query_one(&stmt, &[&i]).await.unwrap();
                assert_eq!(row.get::<_, i64>(0), i * 3 + 1);
                let simple = client
                    .simple_query(&format!("select {i} + 1 as n"))
                    .await
                    .unwrap();
                let value = simple.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                });
                assert_eq!(value, Some((i + 1).to_string()));
            }
        });
        let reads = h.proxy.busy_poll_reads();
        if polls {
            assert!(reads > 0, "busy polling never read anything");
        } else {
            assert_eq!(reads, 0, "busy_poll = 0 must never spin");
        }
        let executed = h
            .statements()
            .iter()
            .filter(|(text, s)| text.contains("* 3 + id") && s.phase == "execute")
            .count();
        assert_eq!(
            executed, 300,
            "every execution is logged (busy_poll {budget:?})"
        );
    }
}

#[test]
fn psycopg_server_side_binding_binary_results_and_prepared_statements() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup_users);
    let script = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
cur = conn.cursor()
cur.execute("select id, email, password from users where id = %s", (1,))
print(cur.fetchall())
cur = conn.cursor(binary=True)
cur.execute("select id, email, password, created from users where id = %s", (2,))
print(cur.fetchall())
for i in range(3):
    print(conn.execute("select count(*) from users where id > %s", (0,), prepare=True).fetchone())
try:
    conn.execute("delete from users")
except psycopg.Error as e:
    print("refused", e.sqlstate)
print(conn.execute("select count(*) from users").fetchone())
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(h.dsn(&h.token()))
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("[(1, 'a@example.com', '****')]"), "{text}");
    assert!(
        text.contains("(2, 'b@example.com', '****', datetime.date(2026, 1, 2))"),
        "{text}"
    );
    assert!(text.contains("refused 42501"), "{text}");
    assert!(text.trim_end().ends_with("(2,)"), "{text}");
    let _ = all(&out);
}

/// Result events wait for the session's next log write (ahead of its next request),
/// but never longer than a short quiet spell: an open, idle session has every result
/// of its finished statements in the log. With busy polling off that is the quiet
/// timer's work; with it on, a lone session writes each result while its client
/// reads the answer. Either way the log keeps each result between its request and
/// the next one.
#[test]
fn results_are_logged_in_order_and_while_the_session_stays_open() {
    for (budget, idle_writes) in [(Duration::ZERO, false), (Duration::from_micros(50), true)] {
        results_logged(budget, idle_writes);
    }
}

fn results_logged(budget: Duration, idle_writes: bool) {
    let options = support::Options {
        busy_poll: budget,
        ..Default::default()
    };
    let h = Harness::start_with(&starter(), options, |_| {});
    let dsn = h.dsn(&h.token());
    h.rt.block_on(async {
        let (client, _conn) = Harness::connect(&dsn).await;
        for i in 0..20 {
            let n: i32 = client
                .query_one(&format!("select {i}"), &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, i);
        }
        // The session stays open and idle: all 20 results reach the log.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let results = h
                .events_now()
                .iter()
                .filter(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Ok))
                .count();
            if results >= 20 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {results} of 20 results logged while the session is open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(client);
    });
    // In log order, each execution's result comes after its request and before the
    // next execution's request.
    let mut open: Option<gatehouse_events::EventId> = None;
    let mut seen = 0;
    for e in h.events() {
        match &e.payload {
            // Each query is parsed (no result of its own), then executed.
            Payload::RequestObserved(r) if matches!(&r.detail, RequestDetail::Postgres(p) if p.phase == "execute") =>
            {
                assert!(open.is_none(), "request before the previous result: {e:?}");
                open = Some(e.id);
            }
            Payload::ResultObserved(r) => {
                assert_eq!(r.request, open.take(), "result out of order: {e:?}");
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 20);
    let writes = h.proxy.idle_result_writes();
    if idle_writes {
        assert!(writes > 0, "a lone session never wrote a result while idle");
    } else {
        assert_eq!(
            writes, 0,
            "busy_poll = 0 must leave results to the next write"
        );
    }
}
