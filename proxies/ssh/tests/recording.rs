//! Recordings and replay, the login decision (`session_open` with the configured host
//! name), and upstream host keys (learned on first use, never silently changed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use gatehouse_core::replay::{ReplayFormat, render, session_events};
use gatehouse_events::payload::{Payload, SshRequestKind};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_replay_as_asciicast_v2_and_text() {
    let f = fixture_with(Setup {
        record_bytes: 64,
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    let o = run(f.ssh(
        &token,
        "bot",
        &["echo recorded-line; head -c 5000 /dev/zero | tr '\\0' x"],
    ))
    .await;
    assert!(o.status.success());
    assert_eq!(o.stdout.len(), "recorded-line\n".len() + 5000);
    let events = f
        .events_when(|e| {
            e.iter()
                .any(|e| matches!(e.payload, Payload::SessionClosed(_)))
        })
        .await;
    let session = events
        .iter()
        .find_map(|e| match e.payload {
            Payload::SessionOpened(_) => e.session_id.clone(),
            _ => None,
        })
        .unwrap();
    let mine = session_events(&events, &session);
    // The cap: 64 bytes of output recorded, the rest counted.
    let recorded: usize = mine
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::SessionData(d) => d.text.as_ref().map(String::len),
            _ => None,
        })
        .sum();
    assert_eq!(recorded, 64);
    let cast = render(&mine, ReplayFormat::Asciicast);
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let frames: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        frames
            .iter()
            .all(|f| f[0].is_f64() && f[1] == "o" || f[1] == "i")
    );
    assert!(
        frames
            .iter()
            .any(|f| f[2].as_str().unwrap().contains("recorded-line"))
    );
    let text = render(&mine, ReplayFormat::Text);
    assert!(text.contains("exec $ echo recorded-line"), "{text}");
    assert!(text.contains("=> allow"), "{text}");
    assert!(text.contains("exit 0"), "{text}");
    let json = render(&mine, ReplayFormat::Json);
    assert_eq!(json.lines().count(), mine.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_decided_with_the_configured_host_name_and_host_keys_are_learned_once() {
    // The upstream host as written in the config ("localhost") is what rules see.
    let f = fixture_with(Setup {
        host: "localhost".into(),
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    let o = run(f.ssh(&token, "bot", &["true"])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(f.ssh(&token, "bot", &["true"])).await;
    assert!(o.status.success());
    let events = f.events();
    let opens: Vec<_> = events
        .iter()
        .filter_map(|e| e.ssh())
        .filter(|s| s.kind == SshRequestKind::SessionOpen)
        .collect();
    assert_eq!(opens.len(), 2);
    assert!(opens.iter().all(|s| s.host == "localhost"));
    let learned: Vec<_> = events
        .iter()
        .filter(
            |e| matches!(&e.payload, Payload::AlertRaised(a) if a.rule == "ssh_host_key_learned"),
        )
        .collect();
    assert_eq!(learned.len(), 1, "learned once, then known");
    let kh = std::fs::read_to_string(f.dir.path().join("ssh_known_hosts")).unwrap();
    let key_b64 = f.sshd.host_public_key.split_whitespace().nth(1).unwrap();
    assert!(kh.contains(key_b64), "{kh}");

    drop(f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_with_an_alert() {
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("k");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    let pin = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let f = fixture_with(Setup {
        pin: Some(pin.trim().to_owned()),
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    let o = run(f.ssh(&token, "bot", &["echo should-not-run"])).await;
    assert_eq!(o.status.code(), Some(255));
    assert!(o.stdout.is_empty());
    let err = text(&o.stderr);
    assert!(err.contains("host key") && err.contains("changed"), "{err}");
    let events = f.events();
    assert!(events.iter().any(
        |e| matches!(&e.payload, Payload::AlertRaised(a) if a.rule == "ssh_host_key_changed")
    ));
}
