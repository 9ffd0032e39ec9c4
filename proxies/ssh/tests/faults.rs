//! Faults a client must be told about in words, not left to guess from an exit code:
//! a login while the event log is failed (a full disk), and a target sshd that dies
//! in the middle of a command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_events::payload::{Payload, ResultStatus};
use support::*;

/// A small tmpfs, unmounted on drop: a real disk that fills up.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "this test fills a small tmpfs to make the event log fail, and needs to mount one \
             (run as root, or in a container allowed to mount tmpfs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the engine of a failed test may still hold the log open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_while_the_event_log_is_failed_is_told_why() {
    let disk = Tmpfs::mount("1m");
    let log_dir: PathBuf = disk.path().join("log");
    let f = fixture_with(Setup {
        log_dir: Some(log_dir),
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    // Works while the disk has room.
    let o = run(f.ssh(&token, "bot", &["echo before"])).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    disk.fill();
    // The log's last page may still hold a few records: append until the disk
    // refuses one, which fails the log.
    let filler = gatehouse_events::Event::builder(
        "gw-ssh-test",
        gatehouse_events::payload::AlertRaised {
            rule: "filler".into(),
            message: "x".repeat(512),
            ..Default::default()
        },
    )
    .build();
    let refused = (0..64).any(|_| f.engine.log().append(&filler).is_err());
    assert!(refused, "the full disk never refused an append");
    let o = run(f.ssh(&token, "bot", &["echo ran"])).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("ran"),
        "the command ran without being logged"
    );
    assert!(
        stderr.contains("gatehouse: the audit log is unavailable; refusing to open a session"),
        "the client should be told why: {stderr}"
    );
    assert!(
        !stderr.contains("Permission denied"),
        "reads like a bad token: {stderr}"
    );
    assert_eq!(o.status.code(), Some(255));
    // A bad token is still refused as one.
    let o = run(f.ssh("not-a-token", "bot", &["echo ran"])).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_sshd_dying_mid_command_is_reported_with_an_exit_status() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    // The command kills the sshd process serving it: the gateway's upstream
    // connection drops in the middle of the command.
    let o = run(f.ssh(
        &token,
        "bot",
        &["echo started; sleep 1; kill -9 $PPID; sleep 5; echo not-reached"],
    ))
    .await;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stdout.contains("started"), "{stdout} {stderr}");
    assert!(!stdout.contains("not-reached"));
    assert!(
        stderr.contains(
            "gatehouse: the connection to target `web` was lost before the command finished"
        ),
        "the client should be told: {stderr}"
    );
    assert_eq!(o.status.code(), Some(255));
    // The result says so too.
    let events = f
        .events_when(|e| {
            e.iter()
                .any(|x| matches!(&x.payload, Payload::ResultObserved(r) if r.message.is_some()))
        })
        .await;
    let lost = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ResultObserved(r) if r.message.is_some() => Some(r),
            _ => None,
        })
        .expect("a result for the lost command");
    assert_eq!(lost.status, ResultStatus::Error);
    assert_eq!(lost.code.as_deref(), Some("255"));
    assert!(
        lost.message
            .as_deref()
            .is_some_and(|m| m.contains("was lost before the command finished")),
        "{lost:?}"
    );
}
