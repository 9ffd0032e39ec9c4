//! The guard's mechanics on this host, with a judge on a Unix socket speaking the
//! guard protocol in place of the gateway. Every property is checked on the host:
//! marker files absent, listeners never connected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A judge: refuses execs of the named programs and connects to the named ports,
/// records every question, and (optionally) hangs up after `answers` answers.
struct Judge {
    socket: PathBuf,
    /// Created when a question about a `slow` program arrives; the answer waits
    /// until someone removes it.
    asked: PathBuf,
    questions: Arc<Mutex<Vec<serde_json::Value>>>,
    _dir: tempfile::TempDir,
}

impl Judge {
    fn start(deny_programs: &[&str], deny_ports: &[u16], answers: Option<usize>) -> Self {
        Self::start_slow(deny_programs, deny_ports, answers, &[])
    }

    /// Like `start`; a question about a `slow` program creates `asked` and is
    /// answered once `asked` is removed again (at most 5 s later).
    fn start_slow(
        deny_programs: &[&str],
        deny_ports: &[u16],
        answers: Option<usize>,
        slow: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("judge.sock");
        let asked = dir.path().join("asked");
        let asked2 = asked.clone();
        let listener = UnixListener::bind(&socket).unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let q = questions.clone();
        let deny_programs: Vec<String> = deny_programs.iter().map(|s| (*s).to_owned()).collect();
        let deny_ports = deny_ports.to_vec();
        let slow: Vec<String> = slow.iter().map(|s| (*s).to_owned()).collect();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let q = q.clone();
                let deny_programs = deny_programs.clone();
                let deny_ports = deny_ports.clone();
                let slow = slow.clone();
                let asked = asked2.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut answered = 0usize;
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        let m: serde_json::Value = serde_json::from_str(&line).unwrap();
                        q.lock().unwrap().push(m.clone());
                        let reply = match m["op"].as_str() {
                            Some("hello") => {
                                assert_eq!(m["token"], "tok-1");
                                serde_json::json!({"ok": true, "max_tasks": 64})
                            }
                            Some("exec") => {
                                let exe = m["exe"].as_str().unwrap_or_default();
                                let base = exe.rsplit('/').next().unwrap_or_default();
                                let deny = deny_programs.iter().any(|d| d == base)
                                    || m["anonymous"] == true
                                    || m["argv"]
                                        .as_array()
                                        .is_some_and(|a| a.iter().any(|x| x == "EVIL"));
                                if slow.iter().any(|d| d == base) {
                                    std::fs::write(&asked, b"").unwrap();
                                    for _ in 0..5000 {
                                        if !asked.exists() {
                                            break;
                                        }
                                        std::thread::sleep(std::time::Duration::from_millis(1));
                                    }
                                }
                                serde_json::json!({"id": m["id"], "allow": !deny,
                                    "message": format!("{base} is not allowed here")})
                            }
                            Some("spawn") => serde_json::json!({"id": m["id"], "allow": true}),
                            Some("connect") => {
                                let port = u16::try_from(m["port"].as_u64().unwrap()).unwrap();
                                let deny = deny_ports.contains(&port);
                                serde_json::json!({"id": m["id"], "allow": !deny,
                                    "message": format!("port {port} is not allowed")})
                            }
                            _ => continue,
                        };
                        if answers.is_some_and(|limit| answered >= limit) {
                            // The gateway goes away mid-session.
                            return;
                        }
                        answered += 1;
                        w.write_all(format!("{reply}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        Self {
            socket,
            asked,
            questions,
            _dir: dir,
        }
    }

    fn execs(&self) -> Vec<serde_json::Value> {
        self.questions
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["op"] == "exec")
            .cloned()
            .collect()
    }
}

fn guard(judge: &Judge, command: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse-guard"))
        .env("GATEHOUSE_GUARD_SOCKET", &judge.socket)
        .env("GATEHOUSE_GUARD_TOKEN", "tok-1")
        .env("SHELL", "/bin/bash")
        .env("SSH_ORIGINAL_COMMAND", command)
        .env("ASKED", &judge.asked)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cc(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let ok = Command::new("cc")
        .args(extra)
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|_| panic!("cc not found: run scripts/install-deps (build-essential)"))
        .success();
    assert!(ok, "cc {name}.c failed");
    out
}

#[test]
fn execs_are_judged_with_the_real_program_and_refused_before_they_run() {
    let judge = Judge::start(&["touch"], &[], None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Spellings a shell parser at the gateway would have to see through; the guard
    // sees only the program the kernel is asked to run.
    let command = format!(
        "cd {d}; echo start; t=tou; ${{t}}ch m1; /usr/bin/env touch m2; sh -c 'touch m3'; \
         ln -s /usr/bin/touch ./innocent; ./innocent m4; \
         printf '#!/bin/sh\\ntouch m5\\n' > s.sh; chmod +x s.sh; ./s.sh; \
         python3 -c 'import os; os.system(\"touch m6\")'; \
         echo dG91Y2ggbTc= | base64 -d | bash; \
         python3 -c 'import os; fd = os.memfd_create(\"t\"); os.write(fd, open(\"/bin/true\", \"rb\").read()); os.execv(\"/proc/self/fd/%d\" % fd, [\"t\", \"m8\"])'; \
         python3 -c 'import os; fd = os.memfd_create(\"t\"); os.write(fd, open(\"/bin/true\", \"rb\").read()); os.execve(fd, [\"t\"], {{}})'; \
         ls > listing; echo end"
    );
    let out = guard(&judge, &command);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("start") && t.contains("end"), "{t}");
    assert!(t.contains("touch is not allowed here"), "{t}");
    for m in ["m1", "m2", "m3", "m4", "m5", "m6", "m7"] {
        assert!(!dir.path().join(m).exists(), "{m} was created:\n{t}");
    }
    assert!(
        dir.path().join("listing").exists(),
        "allowed programs run:\n{t}"
    );
    let execs = judge.execs();
    let innocent = execs
        .iter()
        .find(|m| m["path"] == "./innocent")
        .unwrap_or_else(|| panic!("no exec of ./innocent in {execs:?}"));
    assert_eq!(innocent["exe"], "/usr/bin/touch", "the symlink is resolved");
    assert_eq!(innocent["argv"], serde_json::json!(["./innocent", "m4"]));
    assert_eq!(innocent["cwd"], serde_json::json!(d.to_string()));
    assert_eq!(
        innocent["parents"][0]["exe"], "/usr/bin/bash",
        "the parent chain is reported"
    );
    let memfd: Vec<_> = execs.iter().filter(|m| m["anonymous"] == true).collect();
    assert_eq!(
        memfd.len(),
        2,
        "both memfd execs are judged as anonymous: {execs:?}"
    );
    assert!(
        memfd
            .iter()
            .all(|m| m["exe"].as_str().unwrap().starts_with("/memfd:t")),
        "{memfd:?}"
    );
    let script = execs.iter().find(|m| m["path"] == "./s.sh").unwrap();
    assert_eq!(script["interpreter"], "/usr/bin/dash");
}

#[test]
fn an_exec_whose_memory_changes_after_it_was_judged_is_killed_before_it_runs() {
    // The judge holds its answer for `true` and `echo` until a second thread of the
    // caller has rewritten what the guard read (it waits for the judge's `asked`
    // file, removes it, then rewrites): the rewrite falls exactly between the check
    // and the kernel's read, every time.
    let judge = Judge::start_slow(&["touch"], &[], None, &["true", "echo"]);
    let dir = tempfile::tempdir().unwrap();
    // Mode `path`: exec `/bin/true`, switch the path to `/usr/bin/touch` meanwhile.
    // Mode `argv`: exec `/bin/echo safe`, switch the argument to `EVIL` meanwhile.
    let race = cc(
        dir.path(),
        "race",
        r#"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char path[32] = "/bin/true";
static char arg[32] = "safe";
static int argv_mode;
static void *flip(void *x) {
  const char *asked = getenv("ASKED");
  (void)x;
  while (asked && unlink(asked) != 0) usleep(1000);
  if (argv_mode) memcpy((char *)arg, "EVIL", 5);
  else memcpy((char *)path, "/usr/bin/touch", 15);
  for (;;) pause();
  return 0;
}
int main(int argc, char **argv) {
  char *args[] = {path, argc > 2 ? arg : argv[1], 0};
  char *env[] = {0};
  pthread_t t;
  argv_mode = argc > 2;
  if (argv_mode) memcpy(path, "/bin/echo", 10);
  pthread_create(&t, 0, flip, 0);
  execve(path, args, env);
  return 1;
}
"#,
        &["-pthread"],
    );
    let marker = dir.path().join("raced");
    let out = guard(
        &judge,
        &format!(
            "for i in 1 2 3; do {r} {m}; {r} {m} argv; done; echo finished",
            r = race.display(),
            m = marker.display()
        ),
    );
    let t = text(&out);
    assert!(t.contains("finished"), "{t}");
    assert!(!marker.exists(), "the raced exec ran touch:\n{t}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("EVIL"),
        "the raced argv reached echo:\n{t}"
    );
    // Every rewrite landed after the check: each raced exec was allowed as judged
    // and killed at its exec stop, none refused.
    let killed = t.matches("not the exec that was judged").count();
    let refused = t.matches("is not allowed here").count();
    assert_eq!(
        (killed, refused),
        (6, 0),
        "every raced exec is killed:\n{t}"
    );
    let notices: Vec<_> = judge
        .questions
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m["op"] == "killed")
        .cloned()
        .collect();
    assert_eq!(
        notices.len(),
        killed,
        "each kill is reported to the gateway"
    );
    assert!(
        notices.iter().all(|m| (m["judged_exe"] == "/usr/bin/true"
            && m["loaded_exe"] == "/usr/bin/touch")
            || (m["loaded_exe"] == "/usr/bin/echo" && m["argv"][1] == "EVIL")),
        "{notices:?}"
    );
}

#[test]
fn connects_are_judged_and_made_by_the_guard_to_the_judged_address() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let canary = TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let (ap, cp) = (
        allowed.local_addr().unwrap().port(),
        canary.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        for c in allowed.incoming() {
            let _ = c.unwrap().write_all(b"hello\n");
        }
    });
    let judge = Judge::start(&[], &[cp], None);
    let out = guard(
        &judge,
        &format!(
            "python3 -c '
import socket
for p in ({ap}, {cp}):
    try:
        c = socket.create_connection((\"127.0.0.1\", p)); print(p, c.recv(6))
    except OSError as e: print(p, \"refused\", e.errno)
s = socket.socket(); s.setblocking(False); print(\"nonblocking\", s.connect_ex((\"127.0.0.1\", {ap})))
s6 = socket.socket(socket.AF_INET6)
try: s6.connect((\"::ffff:127.0.0.1\", {cp}))
except OSError as e: print(\"v6\", \"refused\", e.errno)
'; exec 3<>/dev/tcp/127.0.0.1/{cp} || echo bash refused"
        ),
    );
    let t = text(&out);
    assert!(t.contains(&format!("{ap} b'hello\\n'")), "{t}");
    assert!(t.contains(&format!("{cp} refused 13")), "{t}");
    assert!(
        t.contains("nonblocking 115"),
        "EINPROGRESS, as without the guard:\n{t}"
    );
    assert!(
        t.contains("v6 refused 13"),
        "a v4-mapped address is the v4 host:\n{t}"
    );
    assert!(t.contains("bash refused"), "{t}");
    assert!(
        canary.accept().is_err(),
        "the canary listener was connected to:\n{t}"
    );
    let connects: Vec<_> = judge
        .questions
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m["op"] == "connect")
        .cloned()
        .collect();
    assert!(
        connects
            .iter()
            .any(|m| m["address"] == "127.0.0.1" && m["port"] == cp && m["exe"] == "/usr/bin/bash"),
        "{connects:?}"
    );
}

#[test]
fn when_the_gateway_goes_away_nothing_runs() {
    // Two answers (the shell, then `true`); at the third question (`sleep`) the
    // judge hangs up.
    let judge = Judge::start(&[], &[], Some(2));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("after");
    let out = guard(
        &judge,
        &format!(
            "/bin/true; echo before; sleep 0.2; touch {}; echo after",
            marker.display()
        ),
    );
    let t = text(&out);
    assert!(t.contains("before") && t.contains("after"), "{t}");
    assert!(
        !marker.exists(),
        "an exec ran after the gateway went away:\n{t}"
    );
    assert!(t.contains("Permission denied"), "{t}");
}

#[test]
fn ways_around_the_guard_are_closed() {
    let judge = Judge::start(&[], &[], None);
    // Each line tries one escape from inside the session and prints its errno.
    let probe = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def try_(name, *args):
    r = libc.syscall(*args)
    print(name, "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()])
    if r == 0 and name.startswith("clone"):
        os._exit(0)
try_("clone_untraced", 56, 0x00800000 | 17, 0, 0, 0, 0)
try_("clone3", 435, 0, 0)
try_("seccomp_listener", 317, 1, 8, 0)
try_("ptrace_attach", 101, 16, os.getppid(), 0, 0)
try_("io_uring_setup", 425, 8, 0)
try_("process_vm_writev", 311, os.getppid(), 0, 0, 0, 0, 0)
"#;
    let out = guard(&judge, &format!("python3 -c '{probe}'"));
    let t = text(&out);
    for expect in [
        "clone_untraced EPERM",
        "clone3 ENOSYS",
        "seccomp_listener EPERM",
        "ptrace_attach EPERM",
        "io_uring_setup EPERM",
        "process_vm_writev EPERM",
    ] {
        assert!(t.contains(expect), "expected `{expect}`:\n{t}");
    }
}

#[test]
fn without_the_gateway_the_account_does_not_start_a_session() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-guard"))
        .env_remove("GATEHOUSE_GUARD_SOCKET")
        .env(
            "SSH_ORIGINAL_COMMAND",
            "touch /tmp/should-not-exist-gh-guard",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    let mut err = String::new();
    out.stderr.as_slice().read_to_string(&mut err).unwrap();
    assert!(
        err.contains("sessions must come through the Gatehouse gateway"),
        "{err}"
    );
    assert!(!Path::new("/tmp/should-not-exist-gh-guard").exists());
}

#[test]
fn a_fork_bomb_is_bounded_by_the_sessions_task_limit_and_ends_with_it() {
    let judge = Judge::start(&[], &[], None);
    let tag = format!("gh-bomb-{}", std::process::id());
    let out = guard(
        &judge,
        &format!("bash -c 'exec -a {tag} bash -c \":(){{ :|:& }};:; sleep 2\"'; echo survived"),
    );
    let t = text(&out);
    assert!(
        t.contains("survived"),
        "the session goes on after the bomb:\n{t}"
    );
    assert!(t.contains("limit of 64 processes and threads"), "{t}");
    let notices: Vec<_> = judge
        .questions
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m["op"] == "limit")
        .cloned()
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["max_tasks"], 64);
    // On its way up, the policy was asked each time the session grew past another
    // 16 tasks (the judge allowed each), the first time at 17.
    let counts: Vec<u64> = judge
        .questions
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m["op"] == "spawn")
        .map(|m| m["tasks"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.first(), Some(&17), "{counts:?}");
    assert!(
        counts.windows(2).all(|w| w[1] > w[0] && w[1] > 16),
        "one question per step, each for a larger count: {counts:?}"
    );
    // Nothing of the bomb outlives the session.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left = Command::new("pgrep").args(["-f", &tag]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "bomb processes outlived the session: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
