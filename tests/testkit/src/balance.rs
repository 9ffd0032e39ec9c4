//! What a cluster of gateways runs behind and writes to: HAProxy (a plain TCP load
//! balancer, Debian package `haproxy`) and an S3-compatible object store (the `moto`
//! server, PyPI `moto[server]`).

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Proc, find_program, free_port, missing, wait_port};

/// HAProxy in TCP mode: one frontend per service, each spreading connections
/// round-robin over its servers, with health checks every second (a dead server is
/// out after one failed check).
pub struct HaProxy {
    /// The process.
    pub proc: Proc,
    /// Frontend port per service name, in the order given.
    pub ports: Vec<(String, u16)>,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy with a frontend per `(service, backend ports)`.
    pub fn start(services: &[(&str, Vec<u16>)]) -> Self {
        let bin = find_program("haproxy", &["/usr/sbin"])
            .unwrap_or_else(|| missing("haproxy (Debian package haproxy)"));
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global\n  maxconn 4096\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
             retries 3\n  option redispatch\n",
        );
        let mut ports = Vec::new();
        for (name, backends) in services {
            let port = free_port();
            ports.push(((*name).to_owned(), port));
            let _ = write!(
                config,
                "frontend {name}\n  bind 127.0.0.1:{port}\n  default_backend {name}_gateways\n\
                 backend {name}_gateways\n  balance roundrobin\n"
            );
            for (i, b) in backends.iter().enumerate() {
                let _ = writeln!(
                    config,
                    "  server gw{} 127.0.0.1:{b} check inter 1s fall 1 rise 2",
                    i + 1
                );
            }
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let proc = Proc::spawn(
            "haproxy",
            Command::new(bin)
                .arg("-f")
                .arg(&path)
                .arg("-db")
                .stdout(Stdio::null())
                .stderr(log),
        );
        for (_, port) in &ports {
            wait_port(*port, Duration::from_secs(20));
        }
        Self {
            proc,
            ports,
            _dir: dir,
        }
    }

    /// The frontend port of `service`.
    pub fn port(&self, service: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no HAProxy frontend `{service}`"))
    }
}

/// The `moto` S3 server on a free loopback port, with one bucket.
pub struct MotoS3 {
    /// The process.
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    /// The bucket created at start.
    pub bucket: String,
    _dir: tempfile::TempDir,
}

impl MotoS3 {
    /// Any key works against moto; these are what the clients send.
    pub const ACCESS_KEY: &str = "gatehouse-test";
    /// See [`MotoS3::ACCESS_KEY`].
    pub const SECRET_KEY: &str = "gatehouse-test-secret";

    /// Starts the server and creates `bucket`.
    pub fn start(bucket: &str) -> Self {
        // `moto_server`, or the module when pip put the script off PATH.
        let mut cmd = match find_program("moto_server", &[]) {
            Some(bin) => Command::new(bin),
            None => {
                let module = Command::new("python3")
                    .args(["-c", "import moto.server, flask"])
                    .status()
                    .is_ok_and(|s| s.success());
                if !module {
                    missing("the moto S3 server (pip package `moto[server]`)");
                }
                let mut c = Command::new("python3");
                c.args(["-m", "moto.server"]);
                c
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let proc = Proc::spawn(
            "moto_server",
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_port(port, Duration::from_secs(30));
        let created = Command::new("curl")
            .args(["-sf", "-X", "PUT"])
            .arg(format!("http://127.0.0.1:{port}/{bucket}"))
            .output()
            .unwrap_or_else(|_| missing("curl"));
        assert!(
            created.status.success(),
            "cannot create bucket `{bucket}` on moto: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        Self {
            proc,
            port,
            bucket: bucket.into(),
            _dir: dir,
        }
    }

    /// The S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment an S3 client (`gatehouse audit --audit-dir s3://...`) needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
        ]
    }
}
