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
    psql_as(pg, m, "etl", token, sql)
}

fn psql_as(pg: &Postgres, m: &Member, user: &str, token: &str, sql: &str) -> Command {
    let mut c = pg.client("psql");
    c.args(["-h", "127.0.0.1", "-p", &m.proxy.to_string()])
        .args(["-U", user, "-d", "app-db", "-X", "-At", "-c", sql])
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

/// The first record of each of `ids` on the events topic: (partition, offset).
fn first_records(
    brokers: &str,
    ids: &std::collections::HashSet<String>,
) -> std::collections::HashMap<String, (i32, i64)> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let consumer = gatehouse_demo::consume_from_start(
        brokers,
        "order-check",
        "gatehouse.events",
        Duration::from_secs(30),
    );
    let mut found = std::collections::HashMap::new();
    let start = Instant::now();
    while found.len() < ids.len() && start.elapsed() < Duration::from_secs(60) {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.unwrap();
        let id = msg.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "event_id")
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        });
        if let Some(id) = id
            && ids.contains(&id)
        {
            found.entry(id).or_insert((msg.partition(), msg.offset()));
        }
    }
    found
}

/// Two steps of one chain sent to two gateways at the same instant: whichever the
/// cluster's order (Kafka's) puts first is the one judged first. For each of 16
/// identities the first step (`CREATE TABLE`) goes to A and the second (`COMMENT ON`,
/// which completes the sequence after a `CREATE`) to B at once or up to 600 ms later. Wherever the topic
/// holds A's step before B's, B's step must have been blocked: B judged it having
/// seen A's. (Without the ordering point of ADR 0025 §3, B judged its step before
/// A's was acknowledged and let it run.)
#[test]
fn two_steps_of_a_chain_at_the_same_instant_on_two_gateways_are_judged_in_the_clusters_order() {
    let tansu = Tansu::start();
    let pg = Postgres::start();
    let out = pg.psql_app(&["-c", "create table ledger (id int)"]);
    assert!(out.status.success(), "{}", text(&out));
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(
        shared.path().join("holds.rules"),
        "sequence made_then_changed by identity within 10m {\n\
           stage made: pg.statement.kind == create\n\
           stage changed: pg.statement.kind == alter\n\
           then block \"a table made on one gateway is changed on another\"\n\
         }\n",
    )
    .unwrap();
    let a = member("gw-a", &pg, &tansu.brokers(), shared.path());
    let b = member("gw-b", &pg, &tansu.brokers(), shared.path());
    const PAIRS: usize = 16;
    let tokens: Vec<String> = (0..PAIRS)
        .map(|n| {
            let out = cli(
                a.admin,
                ADMIN_TOKEN,
                &[
                    "token",
                    "issue",
                    "--agent",
                    &format!("pair-{n}"),
                    "--target",
                    "app-db",
                    "--ttl",
                    "15m",
                ],
            );
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect();
    let mut b_blocked = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let user = format!("pair-{n}");
        let mut first = psql_as(
            &pg,
            &a,
            &user,
            token,
            &format!("create table made_{n} (id int)"),
        );
        let mut second = psql_as(
            &pg,
            &b,
            &user,
            token,
            &format!("comment on table ledger is 'pair {n}'"),
        );
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let go = barrier.clone();
        let t = std::thread::spawn(move || {
            go.wait();
            first.output().unwrap()
        });
        barrier.wait();
        // B's step starts 0 to 600 ms after A's (a login takes a good part of
        // that): some pairs land A first, some B, some within a hair.
        std::thread::sleep(Duration::from_millis(40 * n as u64));
        let out_b = second.output().unwrap();
        let out_a = t.join().unwrap();
        assert!(out_a.status.success(), "{}", text(&out_a));
        b_blocked.push(text(&out_b).contains("a table made on one gateway is changed on another"));
    }
    // The two requests of each pair, and where the topic first holds each.
    let request_of = |events: Vec<gatehouse_events::Event>, what: &str, n: usize| {
        events
            .into_iter()
            .find(|e| {
                e.identity.as_ref().is_some_and(|i| i.name == format!("pair-{n}"))
                    && matches!(&e.payload, gatehouse_events::Payload::RequestObserved(r) if r.command.starts_with(what))
            })
            .map(|e| e.id.to_string())
            .unwrap_or_else(|| panic!("no `{what}` request of pair {n}"))
    };
    let pairs: Vec<(String, String)> = (0..PAIRS)
        .map(|n| {
            (
                request_of(a.gw.events(), "create table", n),
                request_of(b.gw.events(), "comment on table", n),
            )
        })
        .collect();
    let ids = pairs
        .iter()
        .flat_map(|(x, y)| [x.clone(), y.clone()])
        .collect();
    let at = first_records(&tansu.brokers(), &ids);
    let mut a_first = 0;
    for (n, (ra, rb)) in pairs.iter().enumerate() {
        let (Some(pa), Some(pb)) = (at.get(ra), at.get(rb)) else {
            panic!("pair {n}: a request is not on the topic: {at:?}");
        };
        assert_eq!(pa.0, pb.0, "one identity, one partition");
        eprintln!(
            "pair {n}: A at {pa:?}, B at {pb:?}, B blocked: {}",
            b_blocked[n]
        );
        if pa.1 < pb.1 {
            a_first += 1;
            assert!(
                b_blocked[n],
                "pair {n}: the topic orders A's CREATE (offset {}) before B's COMMENT (offset {}), \
                 yet B let the COMMENT run",
                pa.1, pb.1
            );
        }
    }
    eprintln!(
        "{a_first} of {PAIRS} pairs ordered A first (B blocked in each); {} blocked in all",
        b_blocked.iter().filter(|x| **x).count()
    );
    assert!(
        a_first > 0,
        "no pair put A's step first: the property above was never exercised"
    );
}
