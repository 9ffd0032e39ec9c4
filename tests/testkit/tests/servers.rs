//! The harness itself works: real servers start and answer.

#![allow(clippy::unwrap_used, reason = "test code")]

use gatehouse_testkit::{Postgres, Sshd};

#[test]
fn postgres_starts_with_scram_roles() {
    let pg = Postgres::start();
    let out = pg.psql_app(&["-At", "-c", "select current_user, current_database()"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "gatehouse_svc|app"
    );
    // A wrong password is refused (SCRAM is really on).
    let bad = pg
        .client("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "gatehouse_svc",
            "-d",
            "app",
            "-c",
            "select 1",
        ])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn sshd_starts_and_runs_commands() {
    let sshd = Sshd::start();
    let out = sshd
        .ssh_direct()
        .arg("echo hello-from-sshd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nsshd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(sshd.dir().join("sshd.log")).unwrap_or_default()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-from-sshd\n");
}
