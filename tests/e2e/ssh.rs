//! The SSH proxy through `gatehouse serve`, with tokens and approvals through the CLI.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli};
use crate::support::{Gateway, Sshd, Tansu, free_port, parquet_sql, wait_until};

const RULES: &str = r#"
rule allow_ssh {
  when ssh.kind in [session_open, exec, shell, shell_line, sftp, env]
  then allow
}
rule no_rm {
  when ssh.programs contains "rm"
  then block "rm is not allowed on this host"
}
rule hold_restart {
  when ssh.programs contains "systemctl"
  then require approval from "sre-oncall" timeout 60s
}
"#;

pub struct SshGateway {
    pub gw: Gateway,
    pub sshd: Sshd,
    pub admin_port: u16,
    pub ssh_port: u16,
    pub askpass: std::path::PathBuf,
    pub known_hosts: std::path::PathBuf,
}

pub fn start() -> SshGateway {
    start_with(Sshd::start(), RULES, "")
}

/// A gateway in front of `sshd` with `rules`; `extra` is appended to the
/// configuration after the `web` target (target keys, then other sections).
pub fn start_with(sshd: Sshd, rules: &str, extra: &str) -> SshGateway {
    let admin_port = free_port();
    let ssh_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.rules"), rules).unwrap();
    let config = format!(
        "[listen]\nssh = \"127.0.0.1:{ssh_port}\"\n[policy]\nfiles = [\"policy.rules\"]\n{}\n\
         [[target]]\nname = \"web\"\nprotocol = \"ssh\"\nupstream = \"127.0.0.1:{}\"\nuser = \"{}\"\n\
         key = {{ file = \"{}\" }}\nhost_key = \"{}\"\n{extra}",
        admin_config(admin_port),
        sshd.port,
        sshd.user,
        sshd.client_key.display(),
        sshd.host_public_key,
    );
    let gw = Gateway::start_full(
        dir,
        &config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
        ],
    );
    let host_key = gw
        .serve_log()
        .lines()
        .find_map(|l| {
            l.split("host_key=")
                .nth(1)
                .map(|k| k.trim().trim_matches('"').to_owned())
        })
        .expect("gateway host key in the log");
    let askpass = write_askpass(gw.dir.path());
    let known_hosts = gw.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{ssh_port} {host_key}\n")).unwrap();
    SshGateway {
        gw,
        sshd,
        admin_port,
        ssh_port,
        askpass,
        known_hosts,
    }
}

impl SshGateway {
    pub fn token(&self, agent: &str) -> String {
        let out = cli(
            self.admin_port,
            ADMIN_TOKEN,
            &[
                "token", "issue", "--agent", agent, "--target", "web", "--ttl", "10m",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `ssh` to the gateway as `login` (`agent+target`).
    pub fn ssh(&self, token: &str, login: &str) -> Command {
        ssh_client(
            &self.askpass,
            &self.known_hosts,
            self.ssh_port,
            token,
            login,
        )
    }
}

/// Writes `dir/askpass.sh`, which answers OpenSSH's password prompt with `$GH_TOKEN`.
pub fn write_askpass(dir: &std::path::Path) -> std::path::PathBuf {
    let askpass = dir.join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\nprintf '%s\\n' \"$GH_TOKEN\"\n").unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    askpass
}

/// Plain OpenSSH to a gateway on 127.0.0.1:`port` as `login` (`agent+target`), the
/// token given through `SSH_ASKPASS`, the host key checked against `known_hosts`.
pub fn ssh_client(
    askpass: &std::path::Path,
    known_hosts: &std::path::Path,
    port: u16,
    token: &str,
    login: &str,
) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "PubkeyAuthentication=no",
    ])
    .args([
        "-o",
        "NumberOfPasswordPrompts=1",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
    ])
    .arg("-o")
    .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
    .args(["-p", &port.to_string()])
    .arg(format!("{login}@127.0.0.1"))
    .env("SSH_ASKPASS", askpass)
    .env("SSH_ASKPASS_REQUIRE", "force")
    .env("DISPLAY", ":0")
    .env("GH_TOKEN", token)
    .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ssh_through_serve_judges_exec_and_holds_for_cli_approval() {
    let g = start();
    let token = g.token("etl");

    // Allowed: byte-identical to direct.
    let cmd = "printf 'a\\tb\\n\\x01\\xff'; echo; uname -s";
    let through = g.ssh(&token, "etl+web").arg(cmd).output().unwrap();
    let direct = g.sshd.ssh_direct().arg(cmd).output().unwrap();
    assert!(through.status.success(), "{:?}", text(&through));
    assert_eq!(through.stdout, direct.stdout);

    // Blocked: exit 126, the rule's message on stderr.
    let blocked = g
        .ssh(&token, "etl+web")
        .arg("rm -rf /tmp/gatehouse-should-not-exist")
        .output()
        .unwrap();
    assert_eq!(blocked.status.code(), Some(126), "{:?}", text(&blocked));
    assert!(text(&blocked).1.contains("rm is not allowed on this host"));

    // Held, then approved through the CLI by a reviewer: the command runs.
    let held = g
        .ssh(&token, "etl+web")
        .arg("systemctl --version >/dev/null 2>&1; echo released")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    wait_until("the approval to be listed", Duration::from_secs(20), || {
        let out = cli(g.admin_port, BOB_TOKEN, &["approvals", "list"]);
        id = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        id.starts_with("apr-")
    });
    // The agent cannot approve itself: its token is not an admin API token at all.
    assert!(
        !cli(g.admin_port, &token, &["approvals", "approve", &id])
            .status
            .success()
    );
    let out = cli(g.admin_port, BOB_TOKEN, &["approvals", "approve", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = held.wait_with_output().unwrap();
    let (stdout, stderr) = text(&done);
    assert!(
        stdout.contains("released"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stderr.contains(&id),
        "the agent saw the approval id: {stderr:?}"
    );

    // Held, then denied: a clear error naming the approval id.
    let held = g
        .ssh(&token, "etl+web")
        .arg("systemctl restart nothing")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    wait_until("the second approval", Duration::from_secs(20), || {
        let out = cli(g.admin_port, BOB_TOKEN, &["approvals", "list"]);
        id = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        id.starts_with("apr-")
    });
    assert!(
        cli(
            g.admin_port,
            BOB_TOKEN,
            &["approvals", "deny", &id, "--reason", "change freeze"]
        )
        .status
        .success()
    );
    let denied = held.wait_with_output().unwrap();
    assert_ne!(denied.status.code(), Some(0));
    let (_, stderr) = text(&denied);
    assert!(
        stderr.contains(&id) && stderr.contains("change freeze"),
        "{stderr:?}"
    );

    // A token that names the target is refused when the login names another one.
    let out = g.ssh(&token, "etl+elsewhere").arg("true").output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "a token for `web` reached `elsewhere`"
    );

    // The held key never left the gateway.
    let key = std::fs::read_to_string(&g.sshd.client_key).unwrap();
    let secret_line = key.lines().nth(1).unwrap().to_owned();
    let raw: Vec<u8> = std::fs::read_dir(g.gw.data().join("log"))
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        !String::from_utf8_lossy(&raw).contains(&secret_line),
        "the upstream key reached the event log"
    );
    assert!(!g.gw.serve_log().contains(&secret_line));
    assert!(
        !String::from_utf8_lossy(&raw).contains(&token),
        "the agent token reached the event log"
    );
}

/// `gatehouse guard install` writes a snippet real sshd accepts, and the account it
/// names gets the guard as its forced command with the forward the gateway needs.
#[test]
fn guard_install_writes_a_configuration_sshd_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let snippet = dir.path().join("gatehouse-guard.conf");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["guard", "install", "--user", "agent", "--guard-path"])
        .arg("/usr/local/bin/gatehouse-guard")
        .arg("--write")
        .arg(&snippet)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "guard",
            "install",
            "--user",
            "agent",
            "--guard-path",
            "gatehouse-guard",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be absolute"));

    let sshd = gatehouse_testkit::find_program("sshd", &["/usr/sbin", "/usr/local/sbin"])
        .unwrap_or_else(|| gatehouse_testkit::missing("OpenSSH sshd (openssh-server)"));
    let key = dir.path().join("host_key");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let main = dir.path().join("sshd_config");
    std::fs::write(
        &main,
        format!(
            "HostKey {}\nUsePAM no\nInclude {}\n",
            key.display(),
            snippet.display()
        ),
    )
    .unwrap();
    let effective = |user: &str| {
        let out = Command::new(&sshd)
            .args(["-T", "-C"])
            .arg(format!("user={user},host=h,addr=127.0.0.1"))
            .arg("-f")
            .arg(&main)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sshd rejected the snippet: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_lowercase()
    };
    let agent = effective("agent");
    for line in [
        "forcecommand /usr/local/bin/gatehouse-guard",
        "acceptenv gatehouse_guard_socket",
        "allowstreamlocalforwarding yes",
        "streamlocalbindunlink yes",
    ] {
        assert!(agent.contains(line), "missing `{line}`:\n{agent}");
    }
    assert!(
        !effective("someone-else").contains("forcecommand /usr/local/bin/gatehouse-guard"),
        "only the named account is guarded"
    );
}

/// A guarded host through `gatehouse serve` (issue #24): the processes a session
/// starts are events like any other, shipped to Kafka (OCSF Process Activity) and to
/// the Parquet audit, refused ones included.
#[test]
fn a_guarded_sessions_processes_reach_kafka_and_the_parquet_audit() {
    let tansu = Tansu::start();
    let home = tempfile::tempdir().unwrap();
    let sshd = Sshd::start_with(
        "VERBOSE",
        &format!(
            "ForceCommand env HOME={} PATH=/usr/bin:/bin {}\nAcceptEnv GATEHOUSE_GUARD_*\n\
             AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n",
            home.path().display(),
            gatehouse_testkit::guard_binary().display()
        ),
    );
    let rules = r#"
rule allow_ssh {
  when ssh.kind in [session_open, exec, shell, shell_line, process, connect, spawn]
  then allow
}
rule no_downloaders_on_hosts {
  when ssh.kind == process and ssh.program in ["curl", "wget"]
  then block "downloaders do not run on guarded hosts"
}
"#;
    let g = start_with(
        sshd,
        rules,
        &format!(
            "guard = true\nguard_socket_dir = \"{}\"\n\
             [shipping.parquet]\nmax_age = \"1s\"\n[shipping.kafka]\nbrokers = \"{}\"\n",
            home.path().display(),
            tansu.brokers()
        ),
    );
    let token = g.token("etl");
    // `sh -c` hides curl from the command-line parser; the guard sees its exec.
    let out = g
        .ssh(&token, "etl+web")
        .arg("uname -s; sh -c 'c=curl; $c --version'")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("Linux"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("downloaders do not run on guarded hosts"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("curl 8") && !stdout.contains("libcurl"),
        "{stdout}"
    );

    // Kafka: the execs of uname and curl, as OCSF Process Activity with the real
    // program, the refused one with its disposition.
    let consumer = gatehouse_demo::consume_from_start(
        &tansu.brokers(),
        &format!("guard-{}", std::process::id()),
        "gatehouse.events",
        Duration::from_secs(60),
    );
    let has = |seen: &[String], exe: &str| {
        seen.iter()
            .any(|v| v.contains(&format!("\"exe\":\"{exe}\"")))
    };
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline
        && !(has(&seen, "/usr/bin/curl") && has(&seen, "/usr/bin/uname"))
    {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(rdkafka::Message::payload(&msg).unwrap_or_default()).unwrap();
        if v["class_uid"] == 1007 {
            seen.push(v.to_string());
        }
    }
    assert!(
        has(&seen, "/usr/bin/curl") && has(&seen, "/usr/bin/uname"),
        "the guarded execs as OCSF Process Activity on Kafka: {seen:#?}"
    );

    // Parquet: the same events, with the process columns and the decisions.
    let rows = wait_for_rows(&g.gw.dir.path().join("data/audit"), |rows| {
        rows.iter()
            .any(|r| r.0 == "/usr/bin/curl" && r.1 == "block")
            && rows
                .iter()
                .any(|r| r.0 == "/usr/bin/uname" && r.1 == "allow")
    });
    assert!(
        rows.iter()
            .any(|r| r.0 == "/usr/bin/curl" && r.1 == "block"),
        "{rows:?}"
    );
}

/// `(ssh_process_exe, effect)` of each guarded exec and its decision in the audit,
/// polled until `done` holds or 60 s pass.
fn wait_for_rows(
    audit: &std::path::Path,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let sql = "SELECT r.ssh_process_exe, d.effect FROM events r JOIN events d \
               ON d.request_event_id = r.event_id \
               WHERE r.ssh_process_exe IS NOT NULL AND d.event_type = 'decision_made'";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<(String, String)> = if audit.exists() {
            parquet_sql(audit, sql)
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect()
        } else {
            Vec::new()
        };
        if done(&rows) || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
