//! Faults of the machine under `gatehouse serve`: a full disk under the event log.
//!
//! The gateway's data directory is a real, small tmpfs (mounted by the test; it needs
//! root, which the test machine and CI have). Filling it makes the log's `write(2)`
//! fail with `ENOSPC`: every command is refused, `/healthz` answers 503 and
//! `/metrics` says why; freeing the space brings the gateway back by itself (once
//! 1 MiB is free: the log's recovery headroom), and the outage is in the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_events::payload::Payload;

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli, curl};
use crate::support::{Gateway, Postgres, free_port};

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("`mount` is not available");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk for real and needs root \
             (CAP_SYS_ADMIN): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Byte by byte, the last few: nothing at all is left.
    while f.write(&[0]).is_ok_and(|n| n == 1) {}
    path
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_full_disk_refuses_commands_and_the_gateway_recovers_without_a_restart() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "6m");
    let rules = dir.path().join("allow.rules");
    std::fs::write(
        &rules,
        "rule allow_sql { when pg.statement.kind exists then allow }\n",
    )
    .unwrap();
    let (admin, proxy) = (free_port(), free_port());
    let config = format!(
        "{}\n[policy]\nfiles = [\"{}\"]\n[listen]\npostgres = \"127.0.0.1:{proxy}\"\n\
         [[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{}\"\nuser = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ env = \"GH_TEST_PG_PASSWORD\" }}\n",
        admin_config(admin),
        rules.display(),
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
    let out = cli(
        admin,
        ADMIN_TOKEN,
        &[
            "token", "issue", "--agent", "etl", "--target", "app-db", "--ttl", "15m",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let psql = |sql: &str| {
        pg.client("psql")
            .args(["-h", "127.0.0.1", "-p", &proxy.to_string()])
            .args(["-U", "etl", "-d", "app-db", "-X", "-At", "-c", sql])
            .env("PGPASSWORD", &token)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap()
    };
    let ok = psql("select 'before'");
    assert_eq!(text(&ok).trim(), "before", "{}", text(&ok));
    let (code, body) = curl(admin, "/healthz", None);
    assert_eq!(code, 200, "{body}");

    // The disk fills up. Appends still fit in the segment's last allocated page
    // for a statement or two; then an append fails, and with it every command.
    let filler = fill(&disk.0);
    let mut ran = Vec::new();
    let refused_sql = loop {
        let sql = format!("select 'during {}'", ran.len());
        let out = psql(&sql);
        if !out.status.success() {
            let t = text(&out);
            assert!(t.contains("audit log is unavailable"), "{t}");
            assert!(t.contains("No space left on device"), "{t}");
            break sql;
        }
        ran.push(sql);
        assert!(ran.len() < 50, "the log never failed on a full disk");
    };
    let again = psql("select 'still during'");
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("audit log is unavailable"),
        "{}",
        text(&again)
    );

    // A load balancer sees it: 503 and why; so does Prometheus.
    let (code, body) = curl(admin, "/healthz", None);
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["log"]["writable"], false);
    assert!(
        health["log"]["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{body}"
    );
    assert_eq!(health["upstreams"][0]["target"], "app-db");
    let (_, metrics) = curl(admin, "/metrics", None);
    assert!(metrics.contains("gatehouse_log_writable 0"), "{metrics}");
    assert!(metrics.contains("gatehouse_ready 0"), "{metrics}");
    assert!(
        metrics.contains("gatehouse_log_failures_total 1"),
        "{metrics}"
    );

    // Space comes back: the gateway resumes by itself (bounded back-off, ≤ 5 s).
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    loop {
        let out = psql("select 'after'");
        if out.status.success() {
            assert_eq!(text(&out).trim(), "after");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the gateway did not recover: {}\n{}",
            text(&out),
            gw.serve_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, body) = curl(admin, "/healthz", None);
    assert_eq!(code, 200, "{body}");
    let (_, metrics) = curl(admin, "/metrics", None);
    assert!(metrics.contains("gatehouse_log_writable 1"), "{metrics}");
    assert!(
        metrics.contains("gatehouse_log_recoveries_total 1"),
        "{metrics}"
    );

    // The outage is in the log, with what it refused; no command of the outage ran
    // unrecorded.
    let events = gw.events();
    let outage = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::LogOutage(o) => Some(o.clone()),
            _ => None,
        })
        .expect("a log_outage event");
    assert!(outage.error.contains("No space left on device"));
    assert!(outage.refused_appends >= 1, "{outage:?}");
    assert!(outage.ended_at > outage.started_at);
    let commands: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::RequestObserved(r) => Some(r.command.as_str()),
            _ => None,
        })
        .collect();
    assert!(commands.contains(&"select 'before'"));
    assert!(commands.contains(&"select 'after'"));
    for sql in &ran {
        assert!(commands.contains(&sql.as_str()), "{sql} ran unrecorded");
    }
    assert!(!commands.contains(&refused_sql.as_str()), "{commands:?}");
    assert!(!commands.contains(&"select 'still during'"));
    drop(gw);
    drop(disk);
}
