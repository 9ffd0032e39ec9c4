//! Transparency: with an allow-all policy, SQL scripts (DDL, DML, COPY, errors,
//! notices, large results, unusual types, cursors, prepared statements,
//! and more) give byte-identical `psql` output through the gateway and directly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use support::{ALLOW_ALL, Harness, Postgres, all, ok};

fn run_merged(h: &Harness, script: &str, through_gateway: bool) -> String {
    run_with(h, script, through_gateway, &[], &[])
}

/// `psql -a -f script`, directly or through the gateway, with `env` set and `vars`
/// given as `-v name=value`: its stdout and stderr, merged.
fn run_with(
    h: &Harness,
    script: &str,
    through_gateway: bool,
    env: &[(&str, &str)],
    vars: &[(&str, &str)],
) -> String {
    let path = format!("{}/tests/sql/{script}", env!("CARGO_MANIFEST_DIR"));
    let conn = if through_gateway {
        format!("-h 127.0.0.1 -p {} -U agent -d app-db", h.addr.port())
    } else {
        format!("-h 127.0.0.1 -p {} -U gatehouse_svc -d app", h.pg.port)
    };
    let password = if through_gateway {
        h.token()
    } else {
        Postgres::SERVICE_PASSWORD.to_owned()
    };
    let psql = h.pg.bindir.join("psql");
    let mut v = String::new();
    for (k, x) in vars {
        v.push_str(&format!(" -v {k}={x}"));
    }
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(format!("{} {conn} -X -a{v} -f {path} 2>&1", psql.display()))
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGAPPNAME", "transparency");
    for (k, x) in env {
        c.env(k, x);
    }
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_same(what: &str, direct: &str, gateway: &str) {
    if direct != gateway {
        let d: Vec<&str> = direct.lines().collect();
        let g: Vec<&str> = gateway.lines().collect();
        let first = d
            .iter()
            .zip(&g)
            .position(|(a, b)| a != b)
            .unwrap_or(d.len().min(g.len()));
        panic!(
            "{what}: outputs differ at line {first}:\n direct: {:?}\ngateway: {:?}",
            d.get(first),
            g.get(first)
        );
    }
}

#[test]
fn psql_output_is_byte_identical_through_the_gateway() {
    let h = Harness::start(ALLOW_ALL);
    for script in ["ddl_dml.sql", "errors_notices.sql", "copy_types_large.sql"] {
        let direct = run_merged(&h, script, false);
        let gateway = run_merged(&h, script, true);
        assert!(direct.len() > 200, "{script}: {direct}");
        assert_same(script, &direct, &gateway);
    }
}

/// A DBA's workload (DDL and utility statements of most kinds, psql meta-commands,
/// COPY both ways, large objects, notices, errors) under `PGOPTIONS`, `PGDATESTYLE`
/// and `PGTZ`: byte-identical output through the gateway, a pg_dump of what it made
/// restored through the gateway to the same dump, and every statement PostgreSQL
/// accepts classified (the unparsed fraction printed and asserted).
#[test]
fn a_dba_workload_is_transparent_and_classified() {
    use gatehouse_events::payload::PgKind;
    use gatehouse_proxy_postgres::classify::corpus::{Tally, psql_statements};

    let h = Harness::start(ALLOW_ALL);
    let dir = tempfile::tempdir().unwrap();
    let lofile = format!(
        "{}/tests/sql/errors_notices.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let env = [
        (
            "PGOPTIONS",
            "-c intervalstyle=postgres_verbose -c extra_float_digits=0",
        ),
        ("PGDATESTYLE", "SQL, DMY"),
        ("PGTZ", "America/New_York"),
    ];
    let out = |side: &str| dir.path().join(side).display().to_string();
    let (direct_out, gateway_out) = (out("direct.lo"), out("gateway.lo"));
    // Each run starts from nothing (the script leaves its schema for pg_dump).
    let fresh = || {
        ok(&h
            .pg
            .psql_app(&["-q", "-c", "drop schema if exists dba_ws cascade"]))
    };
    fresh();
    let direct = run_with(
        &h,
        "dba.sql",
        false,
        &env,
        &[("lofile", &lofile), ("loout", &direct_out)],
    );
    fresh();
    let gateway = run_with(
        &h,
        "dba.sql",
        true,
        &env,
        &[("lofile", &lofile), ("loout", &gateway_out)],
    );
    assert!(
        direct.contains("postgres_verbose") && direct.contains("America/New_York"),
        "{direct}"
    );
    assert!(direct.contains("notice from a DO block: 42"), "{direct}");
    assert_same("dba.sql", &direct, &gateway);
    let lo = std::fs::read(&lofile).unwrap();
    assert_eq!(std::fs::read(&direct_out).unwrap(), lo);
    assert_eq!(std::fs::read(&gateway_out).unwrap(), lo);

    // pg_dump of what the workload left, restored through the gateway.
    let dump = |h: &Harness| {
        let out =
            h.pg.client("pg_dump")
                .env("PGPASSWORD", Postgres::SERVICE_PASSWORD)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &h.pg.port.to_string(),
                    "-U",
                    "gatehouse_svc",
                ])
                .args(["-n", "dba_ws", "--no-owner", "app"])
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let before = dump(&h);
    assert!(
        before.contains("CREATE MATERIALIZED VIEW") && before.contains("COPY dba_ws."),
        "{before}"
    );
    ok(&h.pg.psql_app(&["-c", "drop schema dba_ws cascade"]));
    let dump_file = dir.path().join("dump.sql");
    std::fs::write(&dump_file, &before).unwrap();
    let restored = h
        .psql_cmd(&h.token())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-f"])
        .arg(&dump_file)
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", all(&restored));
    // `\restrict` lines carry a random key per dump.
    let keyless = |d: &str| {
        d.lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_same(
        "pg_dump after a restore through the gateway",
        &keyless(&before),
        &keyless(&dump(&h)),
    );

    // psql's own catalog queries, as psql -E shows them.
    let meta =
        h.pg.psql_app(&[
            "-E",
            "-c",
            "\\d dba_ws.orders",
            "-c",
            "\\d+ dba_ws.customers",
            "-c",
            "\\dt+ dba_ws.*",
            "-c",
            "\\df+ dba_ws.*",
            "-c",
            "\\dn+",
            "-c",
            "\\du",
            "-c",
            "\\l",
            "-c",
            "\\dp dba_ws.*",
            "-c",
            "\\ddp",
            "-c",
            "\\dx",
            "-c",
            "\\dT+ dba_ws.*",
            "-c",
            "\\dv dba_ws.*",
            "-c",
            "\\di+ dba_ws.*",
            "-c",
            "\\dRp",
            "-c",
            "\\dRs",
            "-c",
            "\\des",
            "-c",
            "\\dew",
        ])
        .stdout;
    let meta = String::from_utf8_lossy(&meta);
    let queries: Vec<String> = meta
        .split("********* QUERY **********")
        .skip(1)
        .filter_map(|q| q.split("**************************").next())
        .map(str::to_owned)
        .collect();
    assert!(queries.len() >= 20, "{meta}");

    let script =
        std::fs::read_to_string(format!("{}/tests/sql/dba.sql", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let mut workload = Tally::default();
    workload.add_all(psql_statements(&script).iter().map(String::as_str));
    let mut dumped = Tally::default();
    dumped.add_all(psql_statements(&before).iter().map(String::as_str));
    let mut catalog_queries = Tally::default();
    catalog_queries.add_all(queries.iter().map(String::as_str));
    // What the gateway recorded: every statement it was sent.
    let mut sent = Tally::default();
    let texts: Vec<String> = h
        .statements()
        .into_iter()
        .filter(|(_, p)| p.phase == "simple" || p.phase == "parse")
        .map(|(t, _)| t)
        .collect();
    sent.add_all(texts.iter().map(String::as_str));
    for (name, t) in [
        ("workload", &workload),
        ("pg_dump", &dumped),
        ("psql catalog queries", &catalog_queries),
        ("recorded by the gateway", &sent),
    ] {
        eprintln!("{name}: {}", t.report());
        assert!(t.total > 0, "{name}");
        assert!(t.unparsed_rate() <= 0.005, "{name}: {}", t.report());
    }
    // No statement the workload's server accepts is unparsed.
    assert_eq!(workload.unparsed_accepted, 0, "{}", workload.report());
    assert!(workload.fallback > 10, "{}", workload.report());
    assert_eq!(
        h.statements()
            .iter()
            .filter(|(t, p)| p.kind == PgKind::Unparsed && pg_query_accepts(t))
            .count(),
        0
    );
}

fn pg_query_accepts(sql: &str) -> bool {
    let mut t = gatehouse_proxy_postgres::classify::corpus::Tally::default();
    t.add(sql);
    t.rejected == 0
}
