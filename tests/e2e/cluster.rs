//! Two gateways as one (issue #25, ADR 0025): each folds the events the other
//! publishes to a real tansu broker. A statement held on gateway A is released by an
//! approval decided on gateway B; a chain whose first step ran on A is held when its
//! next step comes to B at once; a token revoked on A is refused by B. Real psql
//! against a real PostgreSQL, results checked on the database.
//!
//! The shipper of both gateways waits 4 s before it sends (`linger.ms`): what must
//! reach the other gateway at once (stages, reviewers' decisions, revocations) goes
//! through the cluster link, acknowledged before the command runs.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli};
use crate::support::{Gateway, Postgres, Tansu, free_port, output_text as text};

struct Member {
    gw: Gateway,
    admin: u16,
    proxy: u16,
}

fn member(id: &str, pg: &Postgres, brokers: &str, shared: &std::path::Path) -> Member {
    let dir = tempfile::tempdir().unwrap();
    let starter = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/starter.rules");
    let holds = shared.join("holds.rules");
    let (admin, proxy) = (free_port(), free_port());
    let config = format!(
        "gateway_id = \"{id}\"\n{}\n[policy]\nfiles = [\"{starter}\", \"{}\"]\n\
         [listen]\npostgres = \"127.0.0.1:{proxy}\"\n\
         [tokens]\nkey_file = \"{}\"\n\
         [shipping.kafka]\nbrokers = \"{brokers}\"\n\
         [shipping.kafka.properties]\n\"linger.ms\" = \"4000\"\n\
         [cluster]\nenabled = true\n\
         [[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{}\"\n\
         user = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ env = \"GH_TEST_PG_PASSWORD\" }}\n",
        admin_config(admin),
        holds.display(),
        shared.join("token.ed25519").display(),
        pg.port
    );
    let gw = Gateway::start_full(
        dir,
        &config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
            ("GH_TEST_PG_PASSWORD", Postgres::SERVICE_PASSWORD),
        ],
    );
    Member { gw, admin, proxy }
}

fn psql(pg: &Postgres, m: &Member, token: &str, sql: &str) -> Command {
    let mut c = pg.client("psql");
    c.args(["-h", "127.0.0.1", "-p", &m.proxy.to_string()])
        .args(["-U", "etl", "-d", "app-db", "-X", "-At", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "disable");
    c
}

#[test]
fn approvals_chains_and_revocations_span_the_gateways_of_a_cluster() {
    let tansu = Tansu::start();
    let pg = Postgres::start();
    let out = pg.psql_app(&["-c", "create table t (id int primary key)"]);
    assert!(out.status.success(), "{}", text(&out));
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(
        shared.path().join("holds.rules"),
        "rule hold_comments { when pg.statement.kind == alter and pg.statement.ddl_target == \"t\" then require approval from \"dba\" timeout 60s }\n\
         sequence made_then_changed by identity within 10m {\n\
           stage made: pg.statement.kind == create\n\
           stage changed: pg.statement.kind == alter and pg.statement.ddl_target == \"t2\"\n\
           then block \"a table made on one gateway is changed on another\"\n\
         }\n",
    )
    .unwrap();
    // A creates the shared token key; B starts with it.
    let a = member("gw-a", &pg, &tansu.brokers(), shared.path());
    let b = member("gw-b", &pg, &tansu.brokers(), shared.path());

    let out = cli(
        a.admin,
        ADMIN_TOKEN,
        &[
            "token", "issue", "--agent", "etl", "--target", "app-db", "--ttl", "15m",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    let credential = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    // Held on A ...
    let mut held = psql(&pg, &a, &token, "comment on table t is 'reviewed on b'");
    let child = std::thread::spawn(move || held.output().unwrap());
    // ... listed on B once B has folded A's approval request ...
    let start = Instant::now();
    let id = loop {
        let out = cli(b.admin, BOB_TOKEN, &["approvals", "list"]);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(id) = listed.split_whitespace().find(|w| w.starts_with("apr-")) {
            break id.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gateway B never listed A's approval: {listed}\nA: {}\nB: {}",
            a.gw.serve_log(),
            b.gw.serve_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // ... approved on B, and A runs it.
    let out = cli(b.admin, BOB_TOKEN, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let out = child.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let comment = pg.psql_app(&["-At", "-c", "select obj_description('t'::regclass)"]);
    assert_eq!(
        String::from_utf8_lossy(&comment.stdout).trim(),
        "reviewed on b",
        "the statement ran on the database"
    );

    // A chain across gateways: its first step runs on A, its second comes to B right
    // after and is held there, long before A's shipper would have sent the first.
    let out = psql(&pg, &a, &token, "create table t2 (id int)")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = psql(&pg, &b, &token, "comment on table t2 is 'changed'")
        .output()
        .unwrap();
    assert!(
        text(&out).contains("a table made on one gateway is changed on another"),
        "{}",
        text(&out)
    );
    let comment = pg.psql_app(&["-At", "-c", "select obj_description('t2'::regclass)"]);
    assert_eq!(
        String::from_utf8_lossy(&comment.stdout).trim(),
        "",
        "the second step never reached the database"
    );

    // The token works on B, is revoked on A, and B refuses it.
    let out = psql(&pg, &b, &token, "select 1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(a.admin, ADMIN_TOKEN, &["token", "revoke", &credential]);
    assert!(out.status.success(), "{}", text(&out));
    let revoked = Instant::now();
    loop {
        let out = psql(&pg, &b, &token, "select 1").output().unwrap();
        if !out.status.success() {
            assert!(text(&out).contains("revoked"), "{}", text(&out));
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(30),
            "gateway B still accepts a token revoked on A"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "revocation on A refused by B after {} ms (psql logins included)",
        revoked.elapsed().as_millis()
    );
}
