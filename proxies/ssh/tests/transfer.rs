//! File transfer through the proxy: scp both ways, sftp batch mode (with a refused
//! remove), rsync -e ssh — bytes identical to the source — and masking that applies
//! to `cat` but never to scp.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use gatehouse_events::payload::{Effect, Payload, SshRequestKind};
use support::*;

fn blob(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 11) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_both_ways_sftp_batch_and_rsync_are_byte_identical() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let d = f.dir.path();
    let src = d.join("src.bin");
    let data = blob(3 * 1024 * 1024 + 17, 1);
    std::fs::write(&src, &data).unwrap();
    let host = |p: &std::path::Path| format!("bot@127.0.0.1:{}", p.display());

    // scp upload and download (the SFTP protocol by default; -O for the legacy protocol).
    for legacy in [false, true] {
        let up = d.join(format!("up-{legacy}.bin"));
        let down = d.join(format!("down-{legacy}.bin"));
        let mut c = f.client("scp", &token);
        if legacy {
            c.arg("-O");
        }
        c.arg(&src).arg(host(&up));
        let o = run(c).await;
        assert!(o.status.success(), "scp up: {}", text(&o.stderr));
        let mut c = f.client("scp", &token);
        if legacy {
            c.arg("-O");
        }
        c.arg(host(&up)).arg(&down);
        let o = run(c).await;
        assert!(o.status.success(), "scp down: {}", text(&o.stderr));
        assert!(
            std::fs::read(&up).unwrap() == data,
            "upload differs (legacy={legacy})"
        );
        assert!(
            std::fs::read(&down).unwrap() == data,
            "download differs (legacy={legacy})"
        );
    }

    // sftp batch mode.
    let batch = d.join("batch");
    let sftp_dir = d.join("sftp");
    std::fs::create_dir_all(&sftp_dir).unwrap();
    std::fs::write(
        &batch,
        format!(
            "put {src} {dir}/put.bin\nget {dir}/put.bin {dir}/got.bin\nrename {dir}/put.bin {dir}/renamed.bin\nls {dir}\nrm {dir}/renamed.bin\n",
            src = src.display(),
            dir = sftp_dir.display()
        ),
    )
    .unwrap();
    let mut c = f.client("sftp", &token);
    c.arg("-b").arg(&batch).arg("bot@127.0.0.1");
    let o = run(c).await;
    assert!(
        o.status.success(),
        "sftp: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(std::fs::read(sftp_dir.join("got.bin")).unwrap() == data);
    assert!(!sftp_dir.join("renamed.bin").exists());

    // rsync over ssh.
    let rs = d.join("rsync-dst");
    let mut c = f.rsync(&token);
    c.arg("-a")
        .arg(&src)
        .arg(format!("bot@127.0.0.1:{}/", rs.display()));
    std::fs::create_dir_all(&rs).unwrap();
    let o = run(c).await;
    assert!(o.status.success(), "rsync: {}", text(&o.stderr));
    assert!(std::fs::read(rs.join("src.bin")).unwrap() == data);

    let events = f.events();
    let ops: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| e.ssh())
        .filter(|s| s.kind == SshRequestKind::Sftp)
        .filter_map(|s| Some((s.sftp_op.clone()?, s.path.clone().unwrap_or_default())))
        .collect();
    for want in ["write", "read", "rename", "list", "remove"] {
        assert!(
            ops.iter().any(|(op, _)| op == want),
            "no sftp `{want}` in {ops:?}"
        );
    }
    assert!(
        events
            .iter()
            .filter_map(|e| e.ssh())
            .any(|s| s.program.as_deref() == Some("rsync"))
    );
    assert!(
        events
            .iter()
            .filter_map(|e| e.ssh())
            .any(|s| s.program.as_deref() == Some("scp") && s.argv.iter().any(|a| a == "-t"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_remove_under_a_protected_path_is_refused() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let protected = f.dir.path().join("protected");
    std::fs::create_dir_all(&protected).unwrap();
    let keep = protected.join("keep.txt");
    std::fs::write(&keep, "precious").unwrap();
    let batch = f.dir.path().join("batch");
    // `-rm` lets the batch go on after a failure.
    std::fs::write(
        &batch,
        format!(
            "-rm {k}\nget {k} {d}/copy.txt\n",
            k = keep.display(),
            d = f.dir.path().display()
        ),
    )
    .unwrap();
    let mut c = f.client("sftp", &token);
    c.arg("-b").arg(&batch).arg("bot@127.0.0.1");
    let o = run(c).await;
    let err = text(&o.stderr);
    assert!(
        err.contains("Permission denied") || err.contains("read-only"),
        "{err}"
    );
    assert!(keep.exists(), "the protected file was removed");
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("copy.txt")).unwrap(),
        "precious",
        "the session went on"
    );
    let events = f.events();
    let remove = events
        .iter()
        .find(|e| {
            e.ssh()
                .is_some_and(|s| s.sftp_op.as_deref() == Some("remove"))
        })
        .unwrap();
    let effect = events.iter().find_map(|e| match &e.payload {
        Payload::DecisionMade(d) if d.request == Some(remove.id) => Some(d.effect),
        _ => None,
    });
    assert_eq!(effect, Some(Effect::Block));
}

/// `scp -O` (the legacy protocol) names each file inside its stream: every file and
/// directory is judged by its own path; a refused file is skipped with the
/// protocol's error reply while the others land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_scp_uploads_are_judged_file_by_file() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let d = f.dir.path();
    let local = d.join("local/tree");
    std::fs::create_dir_all(local.join("protected")).unwrap();
    std::fs::write(local.join("ok.txt"), "ok\n").unwrap();
    std::fs::write(local.join("z.txt"), "z\n").unwrap();
    std::fs::write(local.join("protected/keep.txt"), "overwritten\n").unwrap();
    let remote = d.join("remote");
    std::fs::create_dir_all(remote.join("tree/protected")).unwrap();
    let keep = remote.join("tree/protected/keep.txt");
    std::fs::write(&keep, "precious").unwrap();

    let mut c = f.client("scp", &token);
    c.args(["-O", "-r"])
        .arg(&local)
        .arg(format!("bot@127.0.0.1:{}", remote.display()));
    let o = run(c).await;
    let err = text(&o.stderr);
    assert!(!o.status.success(), "a refused file fails the copy: {err}");
    assert!(err.contains("read-only"), "the client says why: {err}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
    assert_eq!(
        std::fs::read_to_string(remote.join("tree/ok.txt")).unwrap(),
        "ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(remote.join("tree/z.txt")).unwrap(),
        "z\n"
    );

    let events = f.events();
    let scp_ops: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| e.ssh())
        .filter(|s| s.transfer.as_deref() == Some("scp") && s.kind == SshRequestKind::Sftp)
        .filter_map(|s| Some((s.sftp_op.clone()?, s.path.clone()?)))
        .collect();
    let r = remote.display();
    for want in [
        ("mkdir", format!("{r}/tree")),
        ("mkdir", format!("{r}/tree/protected")),
        ("write", format!("{r}/tree/ok.txt")),
        ("write", format!("{r}/tree/z.txt")),
        ("write", format!("{r}/tree/protected/keep.txt")),
    ] {
        assert!(
            scp_ops.iter().any(|(op, p)| op == want.0 && *p == want.1),
            "no {want:?} in {scp_ops:?}"
        );
    }
    let blocked = events
        .iter()
        .find(|e| {
            e.ssh()
                .is_some_and(|s| s.path.as_deref().is_some_and(|p| p.ends_with("keep.txt")))
        })
        .unwrap();
    let effect = events.iter().find_map(|e| match &e.payload {
        Payload::DecisionMade(d) if d.request == Some(blocked.id) => Some(d.effect),
        _ => None,
    });
    assert_eq!(effect, Some(Effect::Block));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_of_a_key_is_masked_while_scp_of_it_is_byte_identical() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let key = std::fs::read_to_string(&f.sshd.client_key).unwrap();
    let file = f.dir.path().join("key.pem");
    std::fs::write(&file, format!("before\n{key}API_TOKEN=abc123\nafter\n")).unwrap();
    let o = run(f.ssh(&token, "bot", &[&format!("cat {}", file.display())])).await;
    let out = text(&o.stdout);
    assert!(o.status.success());
    assert_eq!(out, "before\n[MASKED PRIVATE KEY]\n****\nafter\n");
    // With a PTY, output is not masked (masking applies to exec without a PTY only).
    // scp: the same file, untouched.
    let copy = f.dir.path().join("copy.pem");
    let mut c = f.client("scp", &token);
    c.arg("-O")
        .arg(format!("bot@127.0.0.1:{}", file.display()))
        .arg(&copy);
    let o = run(c).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&file).unwrap());
    // The log has the masked text only.
    let raw: Vec<u8> = std::fs::read_dir(&f.log_dir)
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let secret_line = key.lines().nth(1).unwrap();
    let events = f.events();
    let masked = events.iter().find_map(|e| match &e.payload {
        Payload::ResultObserved(r) if r.masked > 0 => Some(r.masked),
        _ => None,
    });
    assert_eq!(masked, Some(2));
    assert!(events.iter().any(|e| matches!(&e.payload, Payload::SessionData(d) if d.text.as_deref().is_some_and(|t| t.contains("[MASKED PRIVATE KEY]")))));
    // Neither the masked cat nor the scp transfer put the key text in the log.
    let cat_data = events.iter().any(|e| matches!(&e.payload, Payload::SessionData(d) if d.text.as_deref().is_some_and(|t| t.contains("before") && t.contains(secret_line))));
    assert!(!cat_data);
    assert!(
        !raw.windows(secret_line.len())
            .any(|w| w == secret_line.as_bytes()),
        "the key is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_a_file_written_earlier_is_marked_across_connections() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let d = f.dir.path();
    let script = d.join("payload.sh");
    std::fs::write(&script, "echo from-payload\n").unwrap();
    let host = |p: &std::path::Path| format!("bot@127.0.0.1:{}", p.display());
    let uploaded = d.join("uploaded-tool.sh");
    // Uploaded over SFTP (scp's default) in one connection...
    let mut c = f.client("scp", &token);
    c.arg(&script).arg(host(&uploaded));
    let o = run(c).await;
    assert!(o.status.success(), "scp up: {}", text(&o.stderr));
    // ...and over the legacy protocol (`scp -t`) in another.
    let legacy = d.join("legacy-tool.sh");
    let mut c = f.client("scp", &token);
    c.arg("-O").arg(&script).arg(host(&legacy));
    let o = run(c).await;
    assert!(o.status.success(), "scp -O up: {}", text(&o.stderr));
    // Run in later connections: the events say the program was written before.
    for (file, cmd) in [
        ("uploaded-tool.sh", format!("sh {}", uploaded.display())),
        ("legacy-tool.sh", format!("bash {}", legacy.display())),
        (
            "inline.sh",
            format!("echo id > {0}/inline.sh; sh {0}/inline.sh", d.display()),
        ),
    ] {
        let o = run(f.ssh(&token, "bot", &[&cmd])).await;
        assert!(o.status.success(), "{cmd}: {}", text(&o.stderr));
        let events = f.events();
        let exec = events
            .iter()
            .rev()
            .find_map(|e| e.ssh().filter(|s| s.kind == SshRequestKind::Exec))
            .unwrap();
        assert!(
            exec.runs_written
                .as_deref()
                .is_some_and(|w| w.contains(file)),
            "{cmd}: {exec:?}"
        );
    }
    // Another identity did not write them.
    let other = f.token("other-bot", "web").await;
    let o = run(f.ssh(
        &other,
        "other-bot",
        &[&format!("sh {}", uploaded.display())],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events = f.events();
    let exec = events
        .iter()
        .rev()
        .find_map(|e| e.ssh().filter(|s| s.kind == SshRequestKind::Exec))
        .unwrap();
    assert_eq!(exec.runs_written, None);
}
