//! The PostgreSQL proxy through `gatehouse serve`: tokens issued with the CLI, real
//! `psql` against a real PostgreSQL, approvals decided with the CLI (approved,
//! denied, expired), and the events in the gateway's log.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gatehouse_events::payload::{Payload, PgKind, RequestDetail, ResultStatus};

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli};
use crate::support::{Gateway, Postgres, free_port};

struct Setup {
    pg: Postgres,
    gw: Gateway,
    admin: u16,
    proxy: u16,
}

fn start() -> Setup {
    start_with("")
}

/// Like [`start`], with `extra` appended to the gateway's config.
fn start_with(extra_config: &str) -> Setup {
    let pg = Postgres::start();
    let out = pg.psql_app(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "create table t (id int primary key, note text)",
        "-c",
        "insert into t values (1, 'a'), (2, 'b')",
        "-c",
        "create table users (id int, password text)",
        "-c",
        "insert into users values (1, 'hunter2')",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("holds.rules");
    std::fs::write(
        &extra,
        "rule hold_comments { when pg.statement.kind == alter and pg.statement.ddl_target == \"t\" then require approval from \"dba\" timeout 2s }\n",
    )
    .unwrap();
    let starter = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/starter.rules");
    let (admin, proxy) = (free_port(), free_port());
    let config = format!(
        "{}\n[policy]\nfiles = [\"{starter}\", \"{}\"]\n[listen]\npostgres = \"127.0.0.1:{proxy}\"\n\
         [[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{}\"\nuser = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ env = \"GH_TEST_PG_PASSWORD\" }}\n",
        admin_config(admin),
        extra.display(),
        pg.port
    ) + extra_config;
    let gw = Gateway::start_full(
        dir,
        &config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
            ("GH_TEST_PG_PASSWORD", Postgres::SERVICE_PASSWORD),
        ],
    );
    Setup {
        pg,
        gw,
        admin,
        proxy,
    }
}

impl Setup {
    fn token(&self) -> String {
        let out = cli(
            self.admin,
            ADMIN_TOKEN,
            &[
                "token", "issue", "--agent", "etl", "--target", "app-db", "--ttl", "15m",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn psql(&self, token: &str) -> Command {
        let mut c = self.pg.client("psql");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.proxy.to_string(),
            "-U",
            "etl",
            "-d",
            "app-db",
            "-X",
        ])
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "disable");
        c
    }

    /// Waits for a pending approval and returns its id.
    fn pending_approval(&self) -> String {
        let start = Instant::now();
        loop {
            let out = cli(self.admin, BOB_TOKEN, &["approvals", "list"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(id) = text.split_whitespace().find(|w| w.starts_with("apr-")) {
                return id.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no approval appeared: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn postgres_through_serve_with_cli_tokens_and_approvals() {
    let s = start();
    let token = s.token();

    // Allowed, masked, blocked; the session survives the block.
    let out = s
        .psql(&token)
        .args([
            "-At",
            "-c",
            "select id, note from t order by id",
            "-c",
            "select password from users",
            "-c",
            "delete from t",
            "-c",
            "select count(*) from t",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("1|a\n2|b\n****\n"), "{t}");
    assert!(
        t.contains("ERROR:  destructive statements need a change ticket"),
        "{t}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with('2'),
        "{t}"
    );

    // Approved with the CLI.
    let mut cmd = s.psql(&token);
    cmd.args(["-c", "comment on table t is 'reviewed'"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = s.pending_approval();
    let out = cli(s.admin, BOB_TOKEN, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let out = child.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("held for approval {id}")),
        "{}",
        text(&out)
    );

    // Denied with the CLI.
    let mut cmd = s.psql(&token);
    cmd.args(["-c", "comment on table t is 'sneaky'"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = s.pending_approval();
    let out = cli(
        s.admin,
        BOB_TOKEN,
        &[
            "approvals",
            "deny",
            &id,
            "--reason",
            "not during the freeze",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = child.join().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("was denied by bob@example.com: not during the freeze"),
        "{}",
        text(&out)
    );

    // Expired (2 s).
    let out = s
        .psql(&token)
        .args(["-c", "comment on table t is 'late'"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("expired before a reviewer decided"),
        "{}",
        text(&out)
    );
    let comment =
        s.pg.psql_app(&["-At", "-c", "select obj_description('t'::regclass)"]);
    assert_eq!(String::from_utf8_lossy(&comment.stdout).trim(), "reviewed");

    // Approved with a time-boxed grant. Longer than `approvals.max_grant` is refused
    // and the approval stays pending; 30 minutes is listed and covers the next
    // statement of the same credential without a hold.
    let mut cmd = s.psql(&token);
    cmd.args(["-c", "comment on table t is 'granted'"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = s.pending_approval();
    let out = cli(
        s.admin,
        BOB_TOKEN,
        &["approvals", "approve", &id, "--for", "9h"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("approvals.max_grant = 8h"),
        "{}",
        text(&out)
    );
    let out = cli(
        s.admin,
        BOB_TOKEN,
        &["approvals", "approve", &id, "--for", "30m"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = child.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(s.admin, BOB_TOKEN, &["approvals", "grants"]);
    let listed = text(&out);
    assert!(
        listed.contains(&id) && listed.contains("credential=tok_"),
        "{listed}"
    );
    let out = s
        .psql(&token)
        .args(["-c", "comment on table t is 'again'"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && !text(&out).contains("held for approval"),
        "{}",
        text(&out)
    );
    // Revoked with the CLI: the same statement is held again (and expires here).
    let out = cli(
        s.admin,
        BOB_TOKEN,
        &["approvals", "revoke-grant", &id, "--reason", "too broad"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("revoked grant {id}")),
        "{}",
        text(&out)
    );
    let out = cli(s.admin, BOB_TOKEN, &["approvals", "grants"]);
    assert!(text(&out).contains("no grants in force"), "{}", text(&out));
    let out = cli(
        s.admin,
        BOB_TOKEN,
        &["approvals", "revoke-grant", &id, "--reason", "twice"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("no grant"), "{}", text(&out));
    let out = s
        .psql(&token)
        .args(["-c", "comment on table t is 'after revoke'"])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("expired before a reviewer decided"),
        "{}",
        text(&out)
    );

    // A bad token never reaches the upstream.
    let out = s.psql("nope").args(["-c", "select 1"]).output().unwrap();
    assert!(text(&out).contains("not a valid token"), "{}", text(&out));

    // The log holds every statement, decision and result; secrets never.
    std::thread::sleep(Duration::from_millis(300));
    let events = s.gw.events();
    let kinds: Vec<PgKind> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::RequestObserved(r) => match &r.detail {
                RequestDetail::Postgres(p) => Some(p.kind),
                _ => None,
            },
            _ => None,
        })
        .collect();
    for k in [PgKind::Select, PgKind::Delete, PgKind::Alter] {
        assert!(kinds.contains(&k), "no `{k}` in {kinds:?}");
    }
    assert!(events.iter().any(
        |e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused)
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.payload, Payload::SessionClosed(_)))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.payload, Payload::AuthFailed(_)))
    );
    let json = serde_json::to_string(&events).unwrap();
    assert!(
        !json.contains(Postgres::SERVICE_PASSWORD)
            && !json.contains("hunter2")
            && !json.contains(&token)
    );
    let log = s.gw.serve_log();
    assert!(!log.contains(Postgres::SERVICE_PASSWORD) && !log.contains(&token));
    let dir = s.gw.stop();
    let out = crate::support::gatehouse(&dir.path().join("data"))
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// A local HTTP server that accepts one request and hands over its head and body.
fn one_request_server() -> (u16, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
        let (mut head, mut len) = (String::new(), 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        tx.send((head, body)).unwrap();
    });
    (port, rx)
}

const WEBHOOK_SECRET: &str = "webhook-signing-secret";

#[test]
fn an_approval_request_reaches_the_webhook_with_the_decision_urls_and_commands() {
    let (port, received) = one_request_server();
    let s = start_with(&format!(
        "[approvals]\nwebhook = \"http://127.0.0.1:{port}/hooks/T0/B0/s3cr3t\"\npublic_url = \"https://gatehouse.example:7070\"\nwebhook_secret = {{ value = \"{WEBHOOK_SECRET}\" }}\n"
    ));
    let token = s.token();
    let mut cmd = s.psql(&token);
    cmd.args(["-c", "comment on table t is 'via webhook'"]);
    let child = std::thread::spawn(move || cmd.output().unwrap());
    let id = s.pending_approval();
    let (head, body) = received
        .recv_timeout(Duration::from_secs(20))
        .expect("no webhook request arrived");
    assert!(
        head.starts_with("POST /hooks/T0/B0/s3cr3t HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    // Signed: HMAC-SHA256 of "{timestamp}.{body}" with the configured secret.
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} header in {head}"))
    };
    let timestamp = header("x-gatehouse-timestamp");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&body);
    let expected: String = aws_lc_rs::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header("x-gatehouse-signature"), format!("v1={expected}"));
    let sent: i64 = timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - sent).abs() < 60,
        "{timestamp}"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["approval"]["id"], id.as_str(), "{v}");
    assert_eq!(v["approval"]["rule"], "hold_comments", "{v}");
    assert_eq!(v["approval"]["group"], "dba", "{v}");
    assert_eq!(v["approval"]["target"], "app-db", "{v}");
    assert_eq!(
        v["approve_url"],
        format!("https://gatehouse.example:7070/v1/approvals/{id}/approve"),
        "{v}"
    );
    assert_eq!(
        v["deny_url"],
        format!("https://gatehouse.example:7070/v1/approvals/{id}/deny"),
        "{v}"
    );
    let message = v["text"].as_str().unwrap();
    assert!(
        message.contains(&id) && message.contains("comment on table t"),
        "{message}"
    );
    // No link buttons (a browser GET cannot decide); the CLI commands instead.
    assert_eq!(v["blocks"][1]["type"], "context", "{v}");
    let how: Vec<&str> = v["blocks"][1]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(how.len(), 2, "{v}");
    assert!(
        how[0].contains(&format!("gatehouse approvals approve {id}"))
            && how[1].contains(&format!("gatehouse approvals deny {id} --reason")),
        "{how:?}"
    );
    assert!(!v.to_string().contains("\"button\""), "{v}");
    // The reviewer answers (or the 2 s hold runs out first on a slow machine); either
    // way the client gets an error naming the approval.
    let _ = cli(
        s.admin,
        BOB_TOKEN,
        &["approvals", "deny", &id, "--reason", "not via chat"],
    );
    let out = child.join().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains(&id), "{}", text(&out));
    // The webhook URL's secret path and the signing secret never reach the
    // operational log.
    let log = s.gw.serve_log();
    assert!(
        !log.contains("s3cr3t") && !log.contains(WEBHOOK_SECRET),
        "{log}"
    );
}
