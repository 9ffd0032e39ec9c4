//! Harness: a real OpenSSH sshd (the target), an in-process engine and SSH proxy,
//! and real OpenSSH clients fed the agent's token through `SSH_ASKPASS`.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::engine::{Engine, EngineOptions, Reviewer};
use gatehouse_core::identity::{Authenticator, IssueRequest, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions};
use gatehouse_dsl::Sources;
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, Protocol};
use gatehouse_proxy_ssh::{SshProxy, SshProxyOptions, SshTarget};
pub use gatehouse_testkit::Sshd;
use tokio::sync::watch;

/// Rules used by most tests.
pub const RULES: &str = r#"
rule allow_ssh {
  when ssh.kind in [session_open, exec, shell, shell_line, sftp, port_forward, env]
  then allow
}
rule no_rm {
  when ssh.programs contains "rm"
  then block "rm is not allowed here"
}
rule hold_reboot {
  when ssh.programs contains "reboot-now"
  then require approval from "sre" timeout 60s
}
rule mask_private_keys {
  when ssh.kind == exec
  then mask values matching /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/ with "[MASKED PRIVATE KEY]",
            values matching /(?m)^(API_TOKEN|PASSWORD)=.*$/ with "****"
}
rule protected_files {
  when ssh.sftp.op in ["remove", "rename", "write"] and ssh.sftp.path glob "**/protected/**"
  then block "files under protected/ are read-only"
}
rule no_forward_to_blocked_port {
  when ssh.kind == port_forward and ssh.forward.port == 9
  then block "port 9 is not reachable through the gateway"
}
"#;

pub struct Fixture {
    pub sshd: Sshd,
    pub engine: Arc<Engine>,
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    pub log_dir: PathBuf,
    pub gateway_key: String,
    /// Stops the proxy (as a gateway shutdown does).
    pub stop: watch::Sender<bool>,
}

pub struct Setup {
    pub rules: String,
    pub host: String,
    pub handshake_timeout: Duration,
    pub record_bytes: u64,
    pub pin: Option<String>,
    /// The target sshd's `LogLevel`.
    pub sshd_log_level: &'static str,
    /// The event log's directory (default: `log` in the fixture's temp dir).
    pub log_dir: Option<PathBuf>,
    /// Lines appended to the target sshd's config.
    pub sshd_extra_config: String,
    /// The targets' configured `aliases`.
    pub aliases: Vec<String>,
    /// A hosts file for the gateway's resolver instead of the system's (no DNS).
    pub hosts_file: Option<String>,
    /// The targets run `gatehouse-guard` (its socket directory on the host).
    pub guard: Option<String>,
    /// Guarded sessions' ceiling on processes and threads.
    pub guard_max_tasks: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            rules: RULES.into(),
            host: "127.0.0.1".into(),
            handshake_timeout: Duration::from_secs(10),
            record_bytes: 1024 * 1024,
            pin: None,
            sshd_log_level: "VERBOSE",
            log_dir: None,
            sshd_extra_config: String::new(),
            aliases: Vec::new(),
            hosts_file: None,
            guard: None,
            guard_max_tasks: 1024,
        }
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(Setup::default()).await
}

pub async fn fixture_with(setup: Setup) -> Fixture {
    let sshd = Sshd::start_with(setup.sshd_log_level, &setup.sshd_extra_config);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = setup
        .log_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("log"));
    let log = Arc::new(EventLog::open(LogConfig::new(&log_dir)).unwrap());
    let mut sources = Sources::new();
    sources.add("test.rules", &setup.rules);
    let policy = match Policy::from_sources(sources, PolicyOptions::default()) {
        Ok(p) => p,
        Err(e) => panic!("rules:\n{}", e.render(100)),
    };
    let policy = PolicyHandle::new(policy, PolicyOptions::default());
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let targets = [
        ("web".to_owned(), Protocol::Ssh),
        ("other".to_owned(), Protocol::Ssh),
        ("inventory-db".to_owned(), Protocol::Postgres),
    ]
    .into_iter()
    .collect();
    let auth = Authenticator::new(TokenKeys::from_pkcs8(pkcs8.as_ref()).unwrap(), targets);
    let mut options = EngineOptions::new("gw-ssh-test");
    if let Some(text) = &setup.hosts_file {
        let path = dir.path().join("hosts");
        std::fs::write(&path, text).unwrap();
        let mut aliases = setup.aliases.clone();
        aliases.insert(0, setup.host.clone());
        options.hosts = Arc::new(gatehouse_core::hosts::HostResolver::new(
            gatehouse_core::hosts::ResolverOptions {
                hosts_file: Some(path),
                dns: false,
                timeout: Duration::from_millis(100),
                aliases: vec![aliases],
            },
        ));
    }
    let engine = Engine::open(options, log, policy, auth).unwrap();
    let key_text = std::fs::read_to_string(&sshd.client_key).unwrap();
    let key = Arc::new(russh::keys::decode_secret_key(&key_text, None).unwrap());
    let mut targets = HashMap::new();
    for name in ["web", "other"] {
        targets.insert(
            name.to_owned(),
            Arc::new(SshTarget {
                name: name.into(),
                upstream: format!("{}:{}", setup.host, sshd.port),
                host: setup.host.clone(),
                aliases: setup.aliases.clone(),
                port: sshd.port,
                user: sshd.user.clone(),
                key: key.clone(),
                host_key: setup
                    .pin
                    .as_deref()
                    .map(|p| gatehouse_proxy_ssh::options::parse_public_key(p).unwrap()),
                guard: setup.guard.clone(),
                guard_max_tasks: setup.guard_max_tasks,
            }),
        );
    }
    let options = SshProxyOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        host_key_file: dir.path().join("keys/ssh_host_ed25519"),
        known_hosts_file: dir.path().join("ssh_known_hosts"),
        targets,
        record_bytes: setup.record_bytes,
        handshake_timeout: setup.handshake_timeout,
        agent_keys: Vec::new(),
    };
    let proxy = SshProxy::bind(engine.clone(), options).await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let gateway_key = proxy.host_public_key();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(proxy.run(rx));
    std::fs::write(
        dir.path().join("askpass.sh"),
        "#!/bin/sh\nprintf '%s\\n' \"$GH_TOKEN\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("askpass.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", addr.port(), gateway_key),
    )
    .unwrap();
    Fixture {
        sshd,
        engine,
        addr,
        log_dir,
        gateway_key,
        dir,
        stop,
    }
}

impl Fixture {
    pub async fn token(&self, agent: &str, target: &str) -> String {
        let (token, _) = self
            .engine
            .issue_token(&IssueRequest {
                agent: agent.into(),
                target: target.into(),
                ttl: Duration::from_secs(600),
                on_behalf_of: None,
                issued_by: None,
            })
            .await
            .unwrap();
        token
    }

    /// OpenSSH client options to reach the gateway with a password (the token).
    pub fn client_opts(&self) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "-o".into(),
            format!(
                "UserKnownHostsFile={}",
                self.dir.path().join("known_hosts").display()
            ),
        ])
        .collect()
    }

    fn with_token(&self, c: &mut Command, token: &str) {
        c.env("SSH_ASKPASS", self.dir.path().join("askpass.sh"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env("GH_TOKEN", token)
            .stdin(Stdio::null());
    }

    /// `ssh -p PORT login@127.0.0.1 ARGS...`
    pub fn ssh(&self, token: &str, login: &str, args: &[&str]) -> Command {
        self.ssh_with(token, login, &[], args)
    }

    /// `ssh OPTIONS -p PORT login@127.0.0.1 ARGS...`
    pub fn ssh_with(&self, token: &str, login: &str, options: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.client_opts())
            .args(options)
            .args(["-p", &self.addr.port().to_string()])
            .arg(format!("{login}@127.0.0.1"))
            .args(args);
        self.with_token(&mut c, token);
        c
    }

    /// A client program (`scp`, `sftp`) with the gateway options; port flag `-P`.
    pub fn client(&self, program: &str, token: &str) -> Command {
        let mut c = Command::new(program);
        c.args(self.client_opts())
            .args(["-P", &self.addr.port().to_string()]);
        self.with_token(&mut c, token);
        c
    }

    /// `rsync -e "ssh ..."`.
    pub fn rsync(&self, token: &str) -> Command {
        let mut c = Command::new("rsync");
        let e = format!(
            "ssh {} -p {}",
            self.client_opts().join(" "),
            self.addr.port()
        );
        c.arg("-e").arg(e);
        self.with_token(&mut c, token);
        c
    }

    /// The log, once every SSH session has closed (results and closes are appended
    /// just after the client goes) — or after 5 s.
    pub fn events(&self) -> Vec<Event> {
        let settled = |e: &[Event]| {
            let ssh = |p: &Payload| {
                e.iter()
                    .filter(|x| {
                        x.protocol == Some(Protocol::Ssh)
                            && std::mem::discriminant(&x.payload) == std::mem::discriminant(p)
                    })
                    .count()
            };
            ssh(&Payload::SessionOpened(Default::default()))
                == ssh(&Payload::SessionClosed(Default::default()))
        };
        for _ in 0..100 {
            let e = read_events(&self.log_dir);
            if settled(&e) {
                std::thread::sleep(Duration::from_millis(100));
                return read_events(&self.log_dir);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        read_events(&self.log_dir)
    }

    /// The events once `done` holds for them (results and session closes are
    /// appended just after the client has gone), or after 5 s.
    pub async fn events_when(&self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        for _ in 0..100 {
            let e = self.events();
            if done(&e) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.events()
    }

    pub async fn approve_next(&self, reviewer: &str) -> String {
        for _ in 0..200 {
            if let Some(p) = self.engine.approvals().list().first() {
                let id = p.id.clone();
                self.engine
                    .approve(
                        &id,
                        &Reviewer {
                            name: reviewer.into(),
                            groups: vec!["sre".into()],
                        },
                        None,
                    )
                    .await
                    .unwrap();
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no approval was requested");
    }
}

pub fn read_events(dir: &Path) -> Vec<Event> {
    LogReader::open(dir, 0)
        .map(|r| r.unwrap().event().unwrap())
        .collect()
}

/// Runs a blocking command off the async runtime.
pub async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The SSH requests in the log, as (kind, command, effect).
pub fn ssh_requests(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::RequestObserved(r) => Some((r.detail.action().to_owned(), r.command.clone())),
            _ => None,
        })
        .collect()
}
