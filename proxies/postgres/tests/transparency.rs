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

use support::{ALLOW_ALL, Harness, Postgres};

fn run_merged(h: &Harness, script: &str, through_gateway: bool) -> String {
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
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} {conn} -X -a -f {path} 2>&1", psql.display()))
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGAPPNAME", "transparency")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn psql_output_is_byte_identical_through_the_gateway() {
    let h = Harness::start(ALLOW_ALL);
    for script in ["ddl_dml.sql", "errors_notices.sql", "copy_types_large.sql"] {
        let direct = run_merged(&h, script, false);
        let gateway = run_merged(&h, script, true);
        assert!(direct.len() > 200, "{script}: {direct}");
        if direct != gateway {
            let d: Vec<&str> = direct.lines().collect();
            let g: Vec<&str> = gateway.lines().collect();
            let first = d
                .iter()
                .zip(&g)
                .position(|(a, b)| a != b)
                .unwrap_or(d.len().min(g.len()));
            panic!(
                "{script}: outputs differ at line {first}:\n direct: {:?}\ngateway: {:?}",
                d.get(first),
                g.get(first)
            );
        }
    }
}
