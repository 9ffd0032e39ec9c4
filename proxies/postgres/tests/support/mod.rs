//! Test harness: a real PostgreSQL, an in-process engine with a given policy, the
//! proxy on a free port, and helpers to run real clients through it.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions, Reviewer};
use gatehouse_core::identity::{Authenticator, IssueRequest, TokenKeys};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions};
use gatehouse_dsl::Sources;
use gatehouse_events::payload::{Payload, PgStatement, RequestDetail};
use gatehouse_events::{Event, Protocol};
pub use gatehouse_proxy_postgres::Options;
use gatehouse_proxy_postgres::PgProxy;
pub use gatehouse_testkit::Postgres;
use tokio::sync::watch;

/// The starter policy shipped with Gatehouse.
pub fn starter() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/starter.rules"
    ))
    .unwrap()
}

/// Allow everything (transparency tests).
pub const ALLOW_ALL: &str = "default allow\n";

pub struct Harness {
    pub pg: Postgres,
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub proxy: Arc<PgProxy>,
    stop: watch::Sender<bool>,
}

fn key() -> Vec<u8> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

impl Harness {
    /// PostgreSQL, the engine with `rules`, and the proxy.
    pub fn start(rules: &str) -> Self {
        Self::start_with(rules, Options::default(), |_| {})
    }

    /// Like `start`, with proxy options and a chance to prepare the database first.
    pub fn start_with(rules: &str, options: Options, setup: impl FnOnce(&Postgres)) -> Self {
        let pg = Postgres::start();
        setup(&pg);
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = Arc::new(
            Config::parse(&format!(
                "[[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{port}\"\nuser = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ value = \"{}\" }}\n\
                 [[target]]\nname = \"wrong-password-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{port}\"\nuser = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ value = \"not-the-password\" }}\n",
                Postgres::SERVICE_PASSWORD,
                port = pg.port,
            ))
            .unwrap(),
        );
        let log = Arc::new(EventLog::open(LogConfig::new(dir.path().join("log"))).unwrap());
        let mut sources = Sources::new();
        sources.add("test.rules", rules);
        let policy = PolicyHandle::new(
            Policy::from_sources(sources, PolicyOptions::default())
                .unwrap_or_else(|e| panic!("{}", e.render(100))),
            PolicyOptions::default(),
        );
        let targets: BTreeMap<String, Protocol> = [
            ("app-db".to_owned(), Protocol::Postgres),
            ("other-db".to_owned(), Protocol::Postgres),
            ("wrong-password-db".to_owned(), Protocol::Postgres),
        ]
        .into();
        let auth = Authenticator::new(TokenKeys::from_pkcs8(&key()).unwrap(), targets);
        let mut eo = EngineOptions::new("gw-test");
        eo.approval_timeout = Duration::from_secs(30);
        let (engine, addr, stop, proxy) = rt.block_on(async {
            let engine = Engine::open(eo, log, policy, auth).unwrap();
            tokio::spawn(engine.clone().run_expiry());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let proxy = PgProxy::new(engine.clone(), config, options).unwrap();
            let (stop, rx) = watch::channel(false);
            tokio::spawn(proxy.clone().serve(listener, rx));
            (engine, addr, stop, proxy)
        });
        Self {
            pg,
            engine,
            addr,
            rt,
            dir,
            proxy,
            stop,
        }
    }

    /// A token for `agent` on `target`.
    pub fn token_for(&self, agent: &str, target: &str, ttl: Duration) -> String {
        let req = IssueRequest {
            agent: agent.into(),
            target: target.into(),
            ttl,
            on_behalf_of: None,
            issued_by: None,
        };
        self.rt.block_on(self.engine.issue_token(&req)).unwrap().0
    }

    /// A 15-minute token for `agent:test` on `app-db`.
    /// Tells the proxy the gateway is shutting down.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    pub fn token(&self) -> String {
        self.token_for("agent:test", "app-db", Duration::from_secs(900))
    }

    /// `psql` through the gateway.
    pub fn psql(&self, args: &[&str]) -> Output {
        self.psql_cmd(&self.token()).args(args).output().unwrap()
    }

    /// A `psql` command through the gateway with `token`.
    pub fn psql_cmd(&self, token: &str) -> Command {
        let mut c = self.pg.client("psql");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.addr.port().to_string(),
            "-U",
            "agent",
            "-d",
            "app-db",
            "-X",
            "-v",
            "VERBOSITY=default",
        ])
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "disable");
        c
    }

    /// A libpq connection string through the gateway.
    pub fn dsn(&self, token: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=agent dbname=app-db password={token} sslmode=disable",
            self.addr.port()
        )
    }

    /// A tokio-postgres client through the gateway (no TLS); its connection runs on a
    /// task whose handle is returned.
    pub async fn connect(
        dsn: &str,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ) {
        let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
            .await
            .unwrap();
        (client, tokio::spawn(conn))
    }

    /// Every event logged so far, once the sessions have closed. A session records
    /// its last results as it closes, after its client may already have exited.
    pub fn events(&self) -> Vec<Event> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.engine.sessions().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.events_now()
    }

    /// Every event logged so far, sessions open or not.
    pub fn events_now(&self) -> Vec<Event> {
        LogReader::open(self.dir.path().join("log"), 0)
            .map(|r| r.unwrap().event().unwrap())
            .collect()
    }

    /// Postgres statements logged so far, with their decision effect.
    pub fn statements(&self) -> Vec<(String, PgStatement)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.payload {
                Payload::RequestObserved(r) => match r.detail {
                    RequestDetail::Postgres(p) => Some((r.command, p)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Approves (or denies) the first pending approval, waiting for one to appear.
    pub fn decide_approval(&self, approve: bool) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(p) = self
                .engine
                .approvals()
                .list()
                .into_iter()
                .find(|p| p.waiting)
            {
                let reviewer = Reviewer {
                    name: "bob@example.com".into(),
                    groups: vec![p.group.clone()],
                };
                self.rt
                    .block_on(async {
                        if approve {
                            self.engine
                                .approve(&p.id, &reviewer, None)
                                .await
                                .map(|_| ())
                        } else {
                            self.engine
                                .deny(&p.id, &reviewer, "not today")
                                .await
                                .map(|_| ())
                        }
                    })
                    .unwrap();
                return p.id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no approval appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// stdout of a successful command.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout + stderr.
pub fn all(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
