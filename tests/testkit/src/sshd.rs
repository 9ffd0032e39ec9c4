//! A throwaway OpenSSH server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, find_program, free_port, missing, wait_port};

/// An `sshd` on 127.0.0.1 that accepts one client key (the key Gatehouse holds) for
/// the current user, with `internal-sftp` and TCP forwarding enabled.
pub struct Sshd {
    /// The server process.
    pub proc: Proc,
    /// TCP port.
    pub port: u16,
    /// The user to log in as (the current user).
    pub user: String,
    /// Private key accepted by the server (OpenSSH format).
    pub client_key: PathBuf,
    /// The server's host public key line (`ssh-ed25519 AAAA...`).
    pub host_public_key: String,
    dir: tempfile::TempDir,
}

fn keygen(path: &std::path::Path) {
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "gatehouse-test",
            "-f",
        ])
        .arg(path)
        .status()
        .unwrap_or_else(|_| missing("ssh-keygen (openssh-client)"))
        .success();
    assert!(ok, "ssh-keygen failed");
}

impl Sshd {
    /// Generates keys, writes a config and starts `sshd -D` (LogLevel VERBOSE).
    pub fn start() -> Self {
        Self::start_logging("VERBOSE")
    }

    /// Like [`start`](Self::start) with another `LogLevel` for `sshd.log` (`DEBUG1`
    /// names each connection's negotiated algorithms, but also sends debug text to
    /// clients, so only tests that read the log use it).
    pub fn start_logging(log_level: &str) -> Self {
        Self::start_with(log_level, "")
    }

    /// Like [`start_logging`](Self::start_logging) with `extra_config` appended to
    /// `sshd_config` (e.g. a `ForceCommand` that gives sessions another home). Options
    /// already set above cannot be set again (sshd keeps the first value).
    pub fn start_with(log_level: &str, extra_config: &str) -> Self {
        let sshd = find_program("sshd", &["/usr/sbin", "/usr/local/sbin"])
            .unwrap_or_else(|| missing("OpenSSH sshd (openssh-server)"));
        let dir = tempfile::Builder::new()
            .prefix("gh-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"));
        keygen(&d.join("client_ed25519"));
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n\
             AllowTcpForwarding yes\nAllowAgentForwarding no\nX11Forwarding no\nPermitTTY yes\n\
             Subsystem sftp internal-sftp\nLogLevel {log_level}\nMaxStartups 100:30:200\nMaxSessions 50\n{extra_config}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let proc = Proc::spawn(
            "sshd",
            Command::new(sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_port(port, Duration::from_secs(20));
        let host_public_key = std::fs::read_to_string(d.join("host_ed25519.pub"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            proc,
            port,
            user,
            client_key: d.join("client_ed25519"),
            host_public_key,
            dir,
        }
    }

    /// The temp directory (`sshd.log`, keys).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `ssh` directly to this server with the client key (the "direct" side).
    pub fn ssh_direct(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-i")
        .arg(&self.client_key)
        .args(["-p", &self.port.to_string()])
        .arg(format!("{}@127.0.0.1", self.user));
        c
    }
}
