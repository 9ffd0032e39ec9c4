//! Test harness: the gateway process, Kafka consumers, cursors. Servers come from
//! `gatehouse-testkit`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[allow(unused_imports, reason = "re-exported for the protocol test modules")]
pub use gatehouse_testkit::{Postgres, Proc, Sshd, Tansu, free_port, wait_port, wait_until};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};

/// The `gatehouse` binary under test.
pub fn gatehouse(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env_remove("GATEHOUSE_LOG_FORMAT");
    c
}

/// A running `gatehouse serve` (the binary under test) with its own data directory and
/// config file: [`gatehouse_testkit::Gateway`] plus the event log reader.
pub struct Gateway(gatehouse_testkit::Gateway);

impl std::ops::Deref for Gateway {
    type Target = gatehouse_testkit::Gateway;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Gateway {
    /// Writes `config` (TOML; `data_dir` is set to `<dir>/data` unless given) and
    /// starts the gateway, waiting until it logs that it is ready.
    #[allow(dead_code, reason = "used by the protocol test modules")]
    pub fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config)
    }

    /// Like [`start`](Self::start), with extra environment (secrets by reference).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full(tempfile::tempdir().unwrap(), config, env)
    }

    /// Like [`start`](Self::start) in an existing directory (restarts keep the data).
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Self {
        Self::start_full(dir, config, &[])
    }

    /// Starts in `dir` with `config` and extra environment.
    pub fn start_full(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        Self(gatehouse_testkit::Gateway::start(
            Path::new(env!("CARGO_BIN_EXE_gatehouse")),
            dir,
            config,
            env,
        ))
    }

    /// Every event in the gateway's log so far.
    pub fn events(&self) -> Vec<gatehouse_events::Event> {
        gatehouse_core::log::LogReader::open(self.data().join("log"), 0)
            .map(|r| r.unwrap().event().unwrap())
            .collect()
    }

    /// Kills the gateway with SIGKILL (a crash); returns the directory for a restart.
    pub fn kill9(self) -> tempfile::TempDir {
        self.0.kill9()
    }

    /// Stops the gateway with SIGTERM and waits; returns the directory for a restart.
    pub fn stop(self) -> tempfile::TempDir {
        self.0.stop()
    }
}

/// Reads every record of `topic` from the beginning until `expected` distinct
/// `event_id` headers were seen or `timeout` passed; returns the ids and the total
/// record count (duplicates included).
pub fn kafka_event_ids(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> (HashSet<String>, usize) {
    let start = Instant::now();
    let consumer = gatehouse_demo::consume_from_start(
        brokers,
        &format!("test-{}", std::process::id()),
        topic,
        timeout,
    );
    let mut ids = HashSet::new();
    let mut total = 0usize;
    while ids.len() < expected && start.elapsed() < timeout {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.unwrap();
        total += 1;
        let id = msg
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "event_id")
                    .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
            .expect("record without an event_id header");
        ids.insert(id);
        drop(msg);
    }
    consumer.unassign().ok();
    (ids, total)
}

/// Reads the shipper cursor (next offset) of `sink`, 0 if none yet.
pub fn cursor(data_dir: &Path, sink: &str) -> u64 {
    let path = data_dir.join("cursors").join(format!("{sink}.cursor"));
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap()["next_offset"]
            .as_u64()
            .unwrap(),
        Err(_) => 0,
    }
}

/// Distinct event ids in the Parquet audit, counted with DataFusion.
pub fn parquet_event_ids(audit_dir: &Path) -> HashSet<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let audit = gatehouse_analytics::Audit::open(audit_dir).await.unwrap();
        let batches = audit
            .sql("SELECT DISTINCT event_id FROM events")
            .await
            .unwrap();
        let mut ids = HashSet::new();
        for b in batches {
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .unwrap();
            for i in 0..datafusion::arrow::array::Array::len(col) {
                ids.insert(col.value(i).to_owned());
            }
        }
        ids
    })
}

/// Rows of `sql` over the Parquet audit in `audit_dir`, every column as text
/// (`NULL` for nulls).
pub fn parquet_sql(audit_dir: &Path, sql: &str) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let audit = gatehouse_analytics::Audit::open(audit_dir).await.unwrap();
        let batches = audit.sql(sql).await.unwrap();
        let mut rows = Vec::new();
        for b in batches {
            for i in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .map(|c| {
                            datafusion::arrow::util::display::array_value_to_string(c, i)
                                .unwrap_or_else(|e| format!("<{e}>"))
                        })
                        .collect(),
                );
            }
        }
        rows
    })
}

/// A finished command's stdout then stderr, as text (for assertions and messages).
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lines of a child's stdout, read on a thread.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
