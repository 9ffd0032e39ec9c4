//! Exec channels through the proxy with real OpenSSH clients against a real sshd.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use gatehouse_events::payload::{Effect, Payload, ResultStatus, SshRequestKind};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_is_byte_identical_and_logged_before_it_runs() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    // A binary file: output through the gateway must equal output direct.
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let file = f.dir.path().join("blob.bin");
    std::fs::write(&file, &data).unwrap();
    let cmd = format!("cat {}", file.display());
    let via = run(f.ssh(&token, "bot", &[&cmd])).await;
    assert!(via.status.success(), "{}", text(&via.stderr));
    let mut direct = f.sshd.ssh_direct();
    direct.arg(&cmd);
    let direct = run(direct).await;
    assert_eq!(via.stdout.len(), data.len());
    assert!(via.stdout == direct.stdout, "output differs from direct");
    // Exit status relayed.
    let st = run(f.ssh(&token, "bot+web", &["exit 7"])).await;
    assert_eq!(st.status.code(), Some(7));

    let events = f.events();
    let reqs = ssh_requests(&events);
    assert!(
        reqs.iter()
            .any(|(k, c)| k == "session_open" && c.contains("127.0.0.1")),
        "{reqs:?}"
    );
    let exec = events
        .iter()
        .find_map(|e| {
            e.ssh()
                .filter(|s| s.kind == SshRequestKind::Exec)
                .map(|s| (e, s.clone()))
        })
        .unwrap();
    assert_eq!(exec.1.program.as_deref(), Some("cat"));
    assert_eq!(exec.1.host, "127.0.0.1");
    assert_eq!(exec.0.identity.as_ref().unwrap().name, "bot");
    // Result with exit code and byte count, after the request.
    let result = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ResultObserved(r) if r.request == Some(exec.0.id) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(result.code.as_deref(), Some("0"));
    assert_eq!(result.bytes, Some(data.len() as u64));
    // Sessions are closed (and logged) just after the client goes.
    let closed = || {
        f.events()
            .iter()
            .filter(|e| matches!(e.payload, Payload::SessionClosed(_)))
            .count()
    };
    for _ in 0..100 {
        if closed() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(closed(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_exec_exits_126_with_the_reason_and_the_connection_stays_usable() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let sock = f.dir.path().join("mux.sock");
    // One multiplexed connection (ControlMaster) carries every command below.
    let sock_s = sock.display().to_string();
    let master = f.ssh_with(&token, "bot", &["-M", "-S", &sock_s, "-f", "-N"], &[]);
    let m = run(master).await;
    assert!(m.status.success(), "{}", text(&m.stderr));
    let via_mux = |cmd: &str| f.ssh_with(&token, "bot", &["-S", &sock_s], &[cmd]);
    let target = f.dir.path().join("victim");
    std::fs::write(&target, "x").unwrap();
    let blocked = run(via_mux(&format!("echo hi && rm -f {}", target.display()))).await;
    assert_eq!(blocked.status.code(), Some(126));
    assert!(
        text(&blocked.stderr).contains("gatehouse: blocked: rm is not allowed here"),
        "{}",
        text(&blocked.stderr)
    );
    assert!(blocked.stdout.is_empty(), "nothing ran");
    assert!(target.exists(), "the blocked command did not run");
    let after = run(via_mux("echo still-here")).await;
    assert_eq!(text(&after.stdout), "still-here\n");
    run(f.ssh_with(&token, "bot", &["-S", &sock_s, "-O", "exit"], &[])).await;

    let events = f.events();
    let decisions: Vec<Effect> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::DecisionMade(d) => Some(d.effect),
            _ => None,
        })
        .collect();
    assert!(decisions.contains(&Effect::Block));
    assert!(events.iter().any(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused && r.code.as_deref() == Some("126"))));
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.payload, Payload::AlertRaised(a) if a.rule == "no_rm"))
    );
    // Exactly one SSH session for all of it.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.payload, Payload::SessionOpened(_)))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_pivots_are_classified() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let out = run(f.ssh(
        &token,
        "bot",
        &["sh -c 'true | cat' && echo $(uname) >/dev/null"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = f.events();
    let exec = events
        .iter()
        .find_map(|e| e.ssh().filter(|s| s.kind == SshRequestKind::Exec))
        .unwrap();
    assert_eq!(exec.programs, ["sh", "true", "cat", "uname", "echo"]);
    assert_eq!(exec.argv, ["sh", "-c", "true | cat"]);
    assert_eq!(
        exec.commands,
        [
            "sh -c true | cat",
            "true",
            "cat",
            "uname",
            "echo $(uname) > /dev/null"
        ]
    );
    assert_eq!(exec.writes, ["/dev/null"]);
    assert_eq!(exec.dynamic, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refused_for_another_target_and_when_malformed() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let wrong = run(f.ssh(&token, "bot+other", &["true"])).await;
    assert_eq!(wrong.status.code(), Some(255));
    let garbage = run(f.ssh("not-a-token", "bot", &["true"])).await;
    assert_eq!(garbage.status.code(), Some(255));
    let events = f.events();
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::AuthFailed(a) => Some(a.reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["wrong_target", "malformed"]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.payload, Payload::SessionOpened(_)))
    );
}

/// The gateway's upstream leg prefers AES-GCM when the CPU has AES instructions
/// (cheaper than ChaCha20-Poly1305 for the target and the gateway), ChaCha20 otherwise.
/// The target's sshd log (LogLevel DEBUG1) names the cipher each connection negotiated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_leg_negotiates_aes_gcm_when_the_cpu_has_aes() {
    let f = fixture_with(Setup {
        sshd_log_level: "DEBUG1",
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    let out = run(f.ssh(&token, "bot", &["true"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    #[cfg(target_arch = "x86_64")]
    let aes = std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let aes = std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let aes = false;
    let expected = if aes {
        "aes256-gcm@openssh.com"
    } else {
        "chacha20-poly1305@openssh.com"
    };
    let log = std::fs::read_to_string(f.sshd.dir().join("sshd.log")).unwrap();
    let ciphers: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("kex: client->server cipher: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(!ciphers.is_empty(), "no kex lines in the sshd log:\n{log}");
    assert!(
        ciphers.iter().all(|c| *c == expected),
        "expected {expected} on every upstream connection, got {ciphers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_survives_a_shared_connection() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let socket = f.dir.path().join("mux.sock");
    let path = format!("ControlPath={}", socket.display());
    let opts = [
        "-o",
        &path,
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=60",
    ];
    let mut failed = Vec::new();
    for i in 0..30 {
        let o = run(f.ssh_with(
            &token,
            "bot",
            &opts,
            &[&format!("echo run-{i}; exit {}", i % 3)],
        ))
        .await;
        if o.status.code() != Some(i % 3) || text(&o.stdout) != format!("run-{i}\n") {
            failed.push((i, o.status.code(), text(&o.stdout), text(&o.stderr)));
        }
    }
    let _ = run(f.ssh_with(&token, "bot", &["-o", &path, "-O", "exit"], &[])).await;
    assert!(
        failed.is_empty(),
        "{} of 30 runs over one connection lost their status: {failed:?}",
        failed.len()
    );
}
