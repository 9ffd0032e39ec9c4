//! A `gatehouse serve` process in a temp directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Proc;

/// A running `gatehouse serve` with its own directory and config file.
pub struct Gateway {
    /// The process.
    pub proc: Proc,
    /// Directory holding `gatehouse.toml`, `data/` and `serve.log`.
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `config` into `dir` (with `data_dir = "data"` unless it sets one), starts
    /// `bin serve` there with `env`, and waits until it logs that it is ready.
    pub fn start(bin: &Path, dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        let config = if config.contains("data_dir") {
            config.to_owned()
        } else {
            format!("data_dir = \"data\"\n{config}")
        };
        std::fs::write(dir.path().join("gatehouse.toml"), config).unwrap();
        let log_path = dir.path().join("serve.log");
        // A restart in the same directory appends to the same log.
        let ready_before = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches("Gatehouse ready.")
            .count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let proc = Proc::spawn(
            "gatehouse serve",
            Command::new(bin)
                .args(["serve", "-c"])
                .arg(dir.path().join("gatehouse.toml"))
                .env("RUST_LOG", "info")
                .env_remove("GATEHOUSE_LOG_FORMAT")
                .envs(env.iter().copied())
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(log),
        );
        let mut gw = Self { proc, dir };
        let start = Instant::now();
        loop {
            let text = gw.serve_log();
            if text.matches("Gatehouse ready.").count() > ready_before {
                return gw;
            }
            if !gw.proc.running() || start.elapsed() > Duration::from_secs(60) {
                panic!("gatehouse serve did not become ready:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The operational log so far.
    pub fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Stops the gateway with SIGTERM (it drains and the shippers flush) and waits
    /// for a clean exit; the directory stays.
    pub fn terminate(&mut self) {
        self.proc.signal("TERM");
        self.proc.wait_success(Duration::from_secs(60));
    }

    /// Kills the gateway with SIGKILL (no draining, no flushing: a crash) and hands
    /// over the directory for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        self.proc.kill9();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// [`terminate`](Self::terminate), then hands over the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.terminate();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}
