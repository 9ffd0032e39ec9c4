//! Interactive shells on a PTY (driven by Python pexpect) and scripts on stdin.

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

enum Step<'a> {
    Send(&'a str),
    Expect(&'a str),
    Eof,
}

fn pty_session(f: &Fixture, token: &str, steps: &[Step<'_>]) -> std::process::Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_shell.py");
    let ssh = f.ssh_with(token, "bot", &["-tt"], &[]);
    let mut c = std::process::Command::new("python3");
    c.arg(script).arg("ssh").args(ssh.get_args());
    for (k, v) in ssh.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let encoded: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Send(t) => format!("send\x1f{}", hex(t)),
            Step::Expect(t) => format!("expect\x1f{}", hex(t)),
            Step::Eof => "eof".to_owned(),
        })
        .collect();
    c.env("PTY_STEPS", encoded.join("\x1e"));
    c
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_lines_are_judged_before_enter_and_blocked_lines_are_discarded() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let victim = f.dir.path().join("victim");
    std::fs::write(&victim, "x").unwrap();
    let rm = format!("rm -f {}\r", victim.display());
    let steps = [
        Step::Send("export PS1='PROMPT> '\r"),
        Step::Expect("PROMPT> "),
        Step::Send("echo hello-$((6*7))\r"),
        Step::Expect("hello-42"),
        Step::Expect("PROMPT> "),
        Step::Send(&rm),
        Step::Expect("gatehouse: blocked: rm is not allowed here"),
        Step::Expect("PROMPT> "),
        // Edited lines are reconstructed: `rx` + backspace + `m`.
        Step::Send("echo ok; rx\x7fm -f /nonexistent\r"),
        Step::Expect("gatehouse: blocked: rm is not allowed here"),
        Step::Expect("PROMPT> "),
        // Tab completion cannot be followed: the line is not sent.
        Step::Send("ech\to x\r"),
        Step::Expect("gatehouse: line not sent"),
        Step::Expect("PROMPT> "),
        // Ctrl-] (character search) moves the cursor where the model cannot follow.
        Step::Send("echo x\x1dx\r"),
        Step::Expect("gatehouse: line not sent"),
        Step::Expect("PROMPT> "),
        // A line that changes the terminal's line discipline is not sent either.
        Step::Send("stty erase x\r"),
        Step::Expect("gatehouse: line not sent: `stty` changes the terminal"),
        Step::Expect("PROMPT> "),
        Step::Send("echo still-$((1+1))\r"),
        Step::Expect("still-2"),
        Step::Send("exit\r"),
        Step::Eof,
    ];
    let out = run(pty_session(&f, &token, &steps)).await;
    let transcript = text(&out.stdout);
    assert!(out.status.success(), "{transcript}\n{}", text(&out.stderr));
    assert!(victim.exists(), "the blocked line did not run");
    assert!(
        !transcript.contains("\nok\r"),
        "the blocked line's first command did not run:\n{transcript}"
    );

    let events = f.events();
    let lines: Vec<(String, Effect)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::RequestObserved(r) if r.detail.action() == "shell_line" => {
                Some(r.command.clone())
            }
            _ => None,
        })
        .zip(
            events
                .iter()
                .filter_map(|e| match &e.payload {
                    Payload::DecisionMade(d) => Some(d.effect),
                    _ => None,
                })
                .skip(2),
        ) // session_open, shell
        .collect();
    let commands: Vec<&str> = lines.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(commands[0], "export PS1='PROMPT> '");
    assert_eq!(commands[1], "echo hello-$((6*7))");
    assert_eq!(commands[2], rm.trim_end());
    assert_eq!(commands[3], "echo ok; rm -f /nonexistent");
    assert!(events.iter().any(|e| {
        e.ssh()
            .is_some_and(|s| s.kind == SshRequestKind::Shell && s.pty)
    }));
    // Lines not sent say so in the log: the request carries why, and a `refused`
    // result follows the policy's decision.
    let unsent: Vec<_> = events
        .iter()
        .filter(|e| {
            e.ssh()
                .and_then(|s| s.parse_error.as_deref())
                .is_some_and(|p| p.starts_with("line not sent"))
        })
        .collect();
    assert_eq!(unsent.len(), 3, "Tab, Ctrl-] and stty lines: {unsent:?}");
    for request in unsent {
        assert!(
            events
                .iter()
                .any(|e| matches!(&e.payload, Payload::ResultObserved(r)
                if r.request == Some(request.id) && r.status == ResultStatus::Refused)),
            "no refused result for {request:?}"
        );
    }
    // Recorded: keystrokes and output, with timing.
    let recorded: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::SessionData(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert!(
        recorded
            .iter()
            .any(|d| d.text.as_deref().is_some_and(|t| t.contains("hello-42")))
    );
    assert!(
        recorded
            .windows(2)
            .all(|w| w[0].elapsed_us <= w[1].elapsed_us)
    );
}

/// A construct typed over several lines on a PTY is judged whole at the Enter that
/// completes it; the target's shell runs none of it before then. A refused line of a
/// bracketed paste drops the whole paste, including lines already allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_constructs_spanning_lines_are_judged_whole() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let victim = f.dir.path().join("victim");
    std::fs::write(&victim, "x").unwrap();
    let heredoc = f.dir.path().join("heredoc.txt");
    let pasted = f.dir.path().join("pasted");
    let steps_owned = [
        // Split so that the echo of this line does not look like the prompt: each
        // step waits for the shell, so no key is typed ahead (see docs/ssh.md).
        "export PS1='PROM''PT> '\r".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        // A loop over three lines runs once complete.
        "for i in 1 2; do\r".to_owned(),
        "echo X-$i-$i$i\r".to_owned(),
        "done\r".to_owned(),
        "\u{1}EXPECT:X-2-22".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        // A loop whose body holds a blocked command: refused whole, nothing ran.
        "for i in 1; do\r".to_owned(),
        "echo loop-ran-$i$i\r".to_owned(),
        format!("rm -f {}\r", victim.display()),
        "done\r".to_owned(),
        "\u{1}EXPECT:gatehouse: blocked: rm is not allowed here".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        // A here-document and a quote across lines.
        format!("cat <<'EOF' > {}\r", heredoc.display()),
        "hello from $HOME\r".to_owned(),
        "EOF\r".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        "echo \"q1-$i\r".to_owned(),
        "q2-$i$i\"\r".to_owned(),
        "\u{1}EXPECT:q2-22".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        // A paste whose second line is refused: the first (allowed) line was only put
        // in the editor's buffer, and is dropped with the rest of the paste.
        format!(
            "\x1b[200~touch {}\nrm -f {}\necho p3-$((3+3))\n\x1b[201~",
            pasted.display(),
            victim.display()
        ),
        "\u{1}EXPECT:the rest of the paste was dropped".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        "echo after-$((2+3))\r".to_owned(),
        "\u{1}EXPECT:after-5".to_owned(),
        "\u{1}EXPECT:PROMPT> ".to_owned(),
        "exit\r".to_owned(),
    ];
    let mut steps: Vec<Step<'_>> = steps_owned
        .iter()
        .map(|s| match s.strip_prefix("\u{1}EXPECT:") {
            Some(e) => Step::Expect(e),
            None => Step::Send(s),
        })
        .collect();
    steps.push(Step::Eof);
    let out = run(pty_session(&f, &token, &steps)).await;
    let transcript = text(&out.stdout);
    assert!(out.status.success(), "{transcript}\n{}", text(&out.stderr));
    // Judged on the host.
    assert!(victim.exists(), "a refused construct ran:\n{transcript}");
    assert!(
        !transcript.contains("loop-ran-11"),
        "part of a refused loop ran:\n{transcript}"
    );
    assert_eq!(
        std::fs::read_to_string(&heredoc).unwrap(),
        "hello from $HOME\n"
    );
    assert!(
        !pasted.exists(),
        "an allowed line of a refused paste ran:\n{transcript}"
    );
    assert!(!transcript.contains("p3-6"), "{transcript}");
    if std::env::var_os("SHOW_TRANSCRIPT").is_some() {
        eprintln!("{transcript}");
    }

    let lines: Vec<String> = f
        .events()
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::RequestObserved(r) if r.detail.action() == "shell_line" => {
                Some(r.command.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        lines.contains(&"for i in 1 2; do\necho X-$i-$i$i\ndone".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!(
            "for i in 1; do\necho loop-ran-$i$i\nrm -f {}\ndone",
            victim.display()
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"echo \"q1-$i\nq2-$i$i\"".to_owned()),
        "{lines:?}"
    );
    // No part of a construct was judged on its own.
    assert!(
        !lines.iter().any(|l| l == "done" || l == "EOF"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_holds_a_shell_line_and_shows_its_id() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let steps = [
        Step::Send("export PS1='PROMPT> '\r"),
        Step::Expect("PROMPT> "),
        Step::Send("reboot-now --dry-run\r"),
        Step::Expect("held for approval apr-"),
        Step::Expect("granted by alice"),
        Step::Expect("reboot-now: command not found"),
        Step::Expect("PROMPT> "),
        Step::Send("exit\r"),
        Step::Eof,
    ];
    let client = tokio::spawn(run(pty_session(&f, &token, &steps)));
    let id = f.approve_next("alice").await;
    let out = client.await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(id.starts_with("apr-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_holds_an_exec_until_granted() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let client = tokio::spawn(run(f.ssh(&token, "bot", &["reboot-now; echo done"])));
    let id = f.approve_next("alice").await;
    let out = client.await.unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("held for approval {id}")),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "done\n");
    assert!(
        f.events()
            .iter()
            .any(|e| matches!(&e.payload, Payload::ApprovalGranted(g) if g.approval_id == id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_exec_never_runs_once_its_client_left() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let marker = f.dir.path().join("ran-after-leaving");
    let mut c = f.ssh(
        &token,
        "bot",
        &[&format!("reboot-now; touch {}", marker.display())],
    );
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut client = c.spawn().unwrap();
    let pending = loop {
        if let Some(p) = f.engine.approvals().list().first() {
            break p.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // The agent gives up: its ssh client dies while the command is held.
    client.kill().unwrap();
    let _ = client.wait();
    let events = f
        .events_when(|e| {
            e.iter().any(|e| {
                matches!(&e.payload, Payload::ApprovalWithdrawn(w) if w.approval_id == pending.id)
            })
        })
        .await;
    assert!(
        events.iter().any(
            |e| matches!(&e.payload, Payload::ApprovalWithdrawn(w) if w.approval_id == pending.id)
        ),
        "the held exec's approval was not withdrawn when its client left"
    );
    // A reviewer's approval, later, finds nothing to run.
    let late = f
        .engine
        .approve(
            &pending.id,
            &gatehouse_core::engine::Reviewer {
                name: "alice".into(),
                groups: vec!["sre".into()],
            },
            None,
        )
        .await;
    assert!(late.is_err(), "a withdrawn approval was granted");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !marker.exists(),
        "the held command ran on the host after its client left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_on_stdin_is_judged_line_by_line() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let mut c = f.ssh(&token, "bot", &[]);
    c.arg("-T");
    let script = f.dir.path().join("script.sh");
    std::fs::write(&script, "echo one\nrm -rf /nonexistent-dir\necho two\n").unwrap();
    c.stdin(std::fs::File::open(&script).unwrap());
    let out = run(c).await;
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    assert!(text(&out.stderr).contains("gatehouse: blocked: rm is not allowed here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_construct_spanning_lines_is_judged_whole() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let mut c = f.ssh(&token, "bot", &[]);
    c.arg("-T");
    let marker = f.dir.path().join("removed-by-loop");
    std::fs::create_dir(&marker).unwrap();
    // The `rm` sits on a line of its own inside a loop, a here-document and a quoted
    // string that span lines: each construct is one unit, judged whole.
    let script = format!(
        "for d in {m}; do\n  echo looping\n  rm -rf \"$d\"\ndone\n\
         cat <<EOF\nline one\nEOF\n\
         echo 'multi\nline'\n\
         # a comment\n\
         echo \\\n  continued\n\
         echo end\n",
        m = marker.display()
    );
    let path = f.dir.path().join("script2.sh");
    std::fs::write(&path, script).unwrap();
    c.stdin(std::fs::File::open(&path).unwrap());
    let out = run(c).await;
    assert!(marker.exists(), "the loop with rm in its body ran");
    assert_eq!(
        text(&out.stdout),
        "line one\nmulti\nline\ncontinued\nend\n",
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("gatehouse: blocked: rm is not allowed here"));
    let lines: Vec<String> = f
        .events()
        .iter()
        .filter_map(|e| {
            e.ssh()
                .filter(|s| s.kind == SshRequestKind::ShellLine)
                .map(|s| s.commands.join("; "))
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("echo looping") && l.contains("rm -rf")),
        "{lines:?}"
    );
}
