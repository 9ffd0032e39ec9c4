//! A throwaway PostgreSQL cluster.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{Proc, find_program, free_port, is_root, missing, open_up, wait_port};

/// A PostgreSQL server on 127.0.0.1 with SCRAM authentication.
///
/// Roles: the superuser `postgres` (password [`Postgres::SUPERUSER_PASSWORD`]) and the
/// service role `gatehouse_svc` (password [`Postgres::SERVICE_PASSWORD`]) that owns the
/// database `app`.
pub struct Postgres {
    /// The server process.
    pub proc: Proc,
    /// TCP port.
    pub port: u16,
    /// Directory of `psql`, `pgbench`, ...
    pub bindir: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Superuser password.
    pub const SUPERUSER_PASSWORD: &'static str = "pg-super-secret-7c1f";
    /// Service role password (the "downstream secret" Gatehouse holds).
    pub const SERVICE_PASSWORD: &'static str = "svc-secret-4b9e2a71";

    fn bindir() -> PathBuf {
        if let Some(p) = find_program("pg_ctl", &[]) {
            // Resolve symlinks like /usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin.
            let real = std::fs::canonicalize(&p).unwrap_or(p);
            return real.parent().map(PathBuf::from).unwrap_or_default();
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .filter(|p| p.join("initdb").exists())
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        versions
            .pop()
            .unwrap_or_else(|| missing("PostgreSQL (initdb/postgres)"))
    }

    fn as_server_user(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    /// initdb, start, create the service role and database, wait until ready.
    pub fn start() -> Self {
        let bindir = Self::bindir();
        let dir = tempfile::Builder::new().prefix("gh-pg-").tempdir().unwrap();
        let port = free_port();
        let mut pg = Self {
            proc: Proc {
                child: Command::new("true").spawn().unwrap(),
                name: "placeholder".into(),
            },
            port,
            bindir,
            dir,
        };
        let data = pg.dir.path().join("data");
        let pwfile = pg.dir.path().join("pwfile");
        std::fs::write(&pwfile, Self::SUPERUSER_PASSWORD).unwrap();
        if is_root() {
            open_up(pg.dir.path());
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap()
                .success();
            assert!(
                ok,
                "cannot chown the PostgreSQL temp dir to the postgres user"
            );
        }
        let out = pg
            .as_server_user("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap_or_else(|_| missing("PostgreSQL initdb"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(pg.dir.path().join("postgres.log")).unwrap();
        let sock = pg.dir.path().to_owned();
        pg.proc = Proc::spawn(
            "postgres",
            pg.as_server_user("postgres")
                .arg("-D")
                .arg(&data)
                .args([
                    "-p",
                    &port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ])
                .arg("-k")
                .arg(&sock)
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_port(port, Duration::from_secs(30));
        // Wait for recovery to finish, then create the service role.
        let mut tries = 0;
        loop {
            let o = pg.psql_super(&["-c", "select 1"]);
            if o.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 100,
                "PostgreSQL did not become ready: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let role = format!(
            "CREATE ROLE gatehouse_svc LOGIN PASSWORD '{}'",
            Self::SERVICE_PASSWORD
        );
        for sql in [role.as_str(), "CREATE DATABASE app OWNER gatehouse_svc"] {
            let o = pg.psql_super(&["-c", sql]);
            assert!(
                o.status.success(),
                "setup failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        pg
    }

    /// The temp directory (logs: `postgres.log`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A client program from the server's bindir (`psql`, `pgbench`).
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(self.bindir.join(program));
        c.env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "10");
        c
    }

    /// `psql` as the superuser on database `postgres`.
    pub fn psql_super(&self, args: &[&str]) -> Output {
        self.client("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(args)
            .env("PGPASSWORD", Self::SUPERUSER_PASSWORD)
            .output()
            .unwrap()
    }

    /// `psql` directly to `app` as `gatehouse_svc` (the "direct" side of comparisons).
    pub fn psql_app(&self, args: &[&str]) -> Output {
        self.client("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "gatehouse_svc",
                "-d",
                "app",
                "-X",
            ])
            .args(args)
            .env("PGPASSWORD", Self::SERVICE_PASSWORD)
            .output()
            .unwrap()
    }
}
