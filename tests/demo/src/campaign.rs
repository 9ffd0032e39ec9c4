//! Scripted lateral-movement campaigns through `gatehouse serve` with the starter
//! policy, real clients (`psql`, `ssh`, `kubectl`) and the demo's servers: each chain
//! shape the gateway must catch, each by its own identity, interleaved with benign
//! agents. Judged on the upstream (a held pod does not exist; a held command's marker
//! file is not written), in `gatehouse audit chains`, and on the alerts topic.
//!
//! The starter's chain windows are shortened to [`WINDOW`] so that one shape can
//! outlast its window within the test.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::message::Message;

use crate::{Demo, Outcome, Setup, consume_from_start, pod_yaml, run_with_stdin, text};

/// The chain windows of the campaign's policy.
pub const WINDOW: Duration = Duration::from_secs(40);

/// What the campaign found.
#[derive(Debug, Default)]
pub struct CampaignReport {
    /// Per identity: findings of the chain sequences on the alerts topic.
    pub chain_findings: BTreeMap<String, usize>,
    /// Per identity: every Detection Finding on the alerts topic.
    pub findings: BTreeMap<String, usize>,
    /// Per identity: approval requests in the audit.
    pub holds: BTreeMap<String, usize>,
    /// Identities with a full `pg->ssh->k8s` chain in `audit chains`.
    pub hunted: Vec<String>,
    /// `audit chains` output.
    pub chains: String,
    /// Time from each completing request to its finding on the alerts topic (the
    /// record's timestamp minus the finding's event time).
    pub alert_latency: Vec<Duration>,
    /// Shapes whose upstream check failed (a held pod existed, a marker was written).
    pub upstream_failures: Vec<String>,
    /// Chain findings whose `unmapped.gatehouse.chain` names the query with the hosts
    /// it read and the SSH login (what a SIEM reads of the chain).
    pub findings_with_steps: usize,
}

/// Identities whose campaign must complete the chain, and how many times.
pub const CHAINS: &[(&str, usize)] = &[
    ("agent-fqdn", 1),
    ("agent-short", 1),
    ("agent-ip", 1),
    ("agent-view", 1),
    ("agent-copy", 1),
    ("agent-retry", 2),
    ("agent-pivot", 1),
    ("agent-i1", 1),
];

/// Identities whose campaign must not: another identity's host, past the window,
/// benign work.
pub const NO_CHAIN: &[&str] = &["agent-i2", "agent-late", "agent-benign"];

fn shorten(rules: String) -> String {
    let w = format!("within {}s", WINDOW.as_secs());
    rules.replace("within 30m", &w).replace("within 15m", &w)
}

/// Runs every campaign; writes a narrative to `out`.
pub fn run(gatehouse: &Path, examples: &Path, out: &mut dyn Write) -> CampaignReport {
    let setup = Setup {
        rules: Some(shorten),
        bastion_aliases: vec!["bastion.internal".into()],
        extra_schema: "INSERT INTO infra.hosts VALUES ('bastion.internal', 'bastion', 'x'), ('127.0.0.1', 'loopback', 'x'); \
                       CREATE VIEW infra.inventory AS SELECT hostname AS name, role FROM infra.hosts;",
    };
    let mut d = Demo::start_with(gatehouse, examples, out, &setup);
    let mut report = CampaignReport::default();

    // One identity per shape: recon (Postgres), hop (SSH login), then the pod.
    let reads: &[(&str, &str)] = &[
        (
            "agent-fqdn",
            "SELECT hostname FROM infra.hosts WHERE hostname = 'bastion.internal'",
        ),
        (
            "agent-short",
            "SELECT upper(split_part(hostname, '.', 1)) AS h FROM infra.hosts WHERE hostname = 'bastion.internal'",
        ),
        (
            "agent-ip",
            "SELECT hostname FROM infra.hosts WHERE role = 'loopback'",
        ),
        (
            "agent-view",
            "SELECT name FROM infra.inventory WHERE name = 'bastion.internal'",
        ),
        (
            "agent-copy",
            "COPY (SELECT hostname FROM infra.hosts WHERE hostname = 'localhost') TO STDOUT",
        ),
    ];
    for (agent, sql) in reads {
        d.section(&format!("{agent}: {sql}"));
        let s = d.as_agent(agent);
        d.psql(&s.pg, sql, Outcome::Allowed);
        d.ssh(&s.ssh, "uname -s", Outcome::Allowed);
        if let Some(f) = d.pod_held_then_denied(&s, &format!("p-{agent}")) {
            report.upstream_failures.push(f);
        }
    }

    d.section("agent-retry: the refused pod is retried; the retry is held again");
    let s = d.as_agent("agent-retry");
    d.psql(
        &s.pg,
        "SELECT hostname FROM infra.hosts WHERE hostname = 'localhost'",
        Outcome::Allowed,
    );
    d.ssh(&s.ssh, "uname -s", Outcome::Allowed);
    for _ in 0..2 {
        if let Some(f) = d.pod_held_then_denied(&s, "p-agent-retry") {
            report.upstream_failures.push(f);
        }
    }

    d.section("agent-pivot: kubectl run on the host the agent read");
    let s = d.as_agent("agent-pivot");
    d.psql(
        &s.pg,
        "SELECT hostname FROM infra.hosts WHERE hostname = 'localhost'",
        Outcome::Allowed,
    );
    d.ssh(&s.ssh, "uname -s", Outcome::Allowed);
    if let Some(f) = d.ssh_held_then_denied(&s) {
        report.upstream_failures.push(f);
    }

    d.section("agent-i1 and agent-i2 interleaved: only i1 read the bastion's name");
    let i1 = d.as_agent("agent-i1");
    let i2 = d.as_agent("agent-i2");
    d.agent = "agent-i1".into();
    d.psql(
        &i1.pg,
        "SELECT hostname FROM infra.hosts WHERE hostname = 'localhost'",
        Outcome::Allowed,
    );
    d.agent = "agent-i2".into();
    d.psql(
        &i2.pg,
        "SELECT hostname FROM infra.hosts WHERE hostname = 'db-1.internal'",
        Outcome::Allowed,
    );
    d.agent = "agent-i1".into();
    d.ssh(&i1.ssh, "uname -s", Outcome::Allowed);
    d.agent = "agent-i2".into();
    d.ssh(&i2.ssh, "uname -s", Outcome::Allowed);
    d.pod_created(&i2, "p-agent-i2");
    d.agent = "agent-i1".into();
    if let Some(f) = d.pod_held_then_denied(&i1, "p-agent-i1") {
        report.upstream_failures.push(f);
    }

    d.section("agent-benign: routine work on all three protocols");
    let s = d.as_agent("agent-benign");
    d.psql(
        &s.pg,
        "SELECT id, total FROM orders ORDER BY id",
        Outcome::Allowed,
    );
    d.ssh(&s.ssh, "uptime", Outcome::Allowed);
    d.kubectl(
        &s.kubeconfig,
        &["get", "pods", "-A"],
        None,
        Outcome::Allowed,
    );
    d.pod_created(&s, "p-agent-benign");

    d.section(&format!(
        "agent-late: the pod comes after the chain's {} s window",
        WINDOW.as_secs()
    ));
    let s = d.as_agent("agent-late");
    d.psql(
        &s.pg,
        "SELECT hostname FROM infra.hosts WHERE hostname = 'localhost'",
        Outcome::Allowed,
    );
    d.ssh(&s.ssh, "uname -s", Outcome::Allowed);
    std::thread::sleep(WINDOW + Duration::from_secs(2));
    d.pod_created(&s, "p-agent-late");

    // The alerts topic: findings per identity, and how long each chain's took.
    let consumer = consume_from_start(
        &d.tansu.brokers(),
        "gatehouse-campaign",
        "gatehouse.alerts",
        Duration::from_secs(30),
    );
    let expected: usize = CHAINS.iter().map(|(_, n)| n).sum();
    let start = Instant::now();
    let mut quiet_since = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let chains: usize = report.chain_findings.values().sum();
        if chains >= expected && quiet_since.elapsed() > Duration::from_secs(3) {
            break;
        }
        let Some(msg) = consumer.poll(Duration::from_millis(300)) else {
            continue;
        };
        let msg = msg.unwrap();
        quiet_since = Instant::now();
        let v: serde_json::Value =
            serde_json::from_slice(msg.payload().unwrap_or_default()).unwrap();
        let who = v["actor"]["user"]["name"].as_str().unwrap_or("").to_owned();
        if v["class_uid"] == 2004 {
            *report.findings.entry(who.clone()).or_default() += 1;
        }
        // Detection Findings only (approval requests ride on the topic too).
        if v["class_uid"] == 2004 && v.to_string().contains("pg_ssh_k8s") {
            *report.chain_findings.entry(who).or_default() += 1;
            let steps = v["unmapped"]["gatehouse"]["chain"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let read = steps.iter().any(|s| {
                s["protocol"] == "postgres"
                    && s["captured"].as_array().is_some_and(|c| !c.is_empty())
            });
            let login = steps.iter().any(|s| {
                s["summary"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("SSH login to"))
            });
            if read && login {
                report.findings_with_steps += 1;
            }
            if let (Some(at), Some(sent)) = (v["time"].as_i64(), msg.timestamp().to_millis()) {
                report
                    .alert_latency
                    .push(Duration::from_millis(u64::try_from(sent - at).unwrap_or(0)));
            }
        }
    }

    // After the fact: the hunt over the Parquet audit, with the same window.
    d.gateway.terminate();
    let within = format!("{}s", WINDOW.as_secs());
    report.chains = d.audit(&["chains", "--within", &within, "--format", "csv"]);
    for line in report.chains.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.first() == Some(&"pg->ssh->k8s")
            && let Some(who) = f.get(1)
            && !report.hunted.iter().any(|h| h == who)
        {
            report.hunted.push((*who).to_owned());
        }
    }
    let holds = d.audit(&[
        "sql",
        "--format",
        "csv",
        "SELECT identity, count(*) AS n FROM events WHERE event_type = 'approval_requested' GROUP BY identity ORDER BY identity",
    ]);
    for line in holds.lines().skip(1) {
        if let Some((who, n)) = line.split_once(',') {
            report
                .holds
                .insert(who.to_owned(), n.trim().parse().unwrap_or(0));
        }
    }
    d.say(&format!(
        "$ gatehouse audit chains --within {within}\n{}",
        report.chains
    ));
    report
}

/// One agent's credentials.
pub(crate) struct Agent {
    name: String,
    pg: String,
    ssh: String,
    kubeconfig: PathBuf,
}

impl Demo<'_> {
    /// Issues `agent` a token for each target (and makes it the current agent).
    fn as_agent(&mut self, agent: &str) -> Agent {
        self.agent = agent.to_owned();
        let kubeconfig = self.home.path().join(format!("kubeconfig-{agent}"));
        let pg = self.issue("app-db", None);
        let ssh = self.issue("bastion", None);
        self.issue("prod-k8s", Some(&kubeconfig));
        Agent {
            name: agent.to_owned(),
            pg,
            ssh,
            kubeconfig,
        }
    }

    /// The pending approval of `agent`, waited for.
    fn approval_of(&mut self, agent: &str) -> String {
        let start = Instant::now();
        loop {
            let out = self
                .cli()
                .args(["approvals", "list", "--json"])
                .output()
                .unwrap();
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            let found = v["approvals"].as_array().and_then(|list| {
                list.iter()
                    .find(|a| a["identity"] == agent)
                    .and_then(|a| a["id"].as_str().map(str::to_owned))
            });
            if let Some(id) = found {
                return id;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no approval for {agent}: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn deny(&mut self, id: &str) {
        let out = self
            .cli()
            .args(["approvals", "deny", id, "--reason", "campaign: not allowed"])
            .output()
            .unwrap();
        assert!(out.status.success(), "deny {id}: {}", text(&out));
    }

    fn pod_exists(&self, name: &str) -> bool {
        self._k8s.state.store.get("pods", "default", name).is_some()
    }

    /// `kubectl apply` of pod `name` is held; while held the pod does not exist on
    /// the upstream; the reviewer denies it; it still does not. Returns what went
    /// wrong on the upstream, if anything.
    fn pod_held_then_denied(&mut self, a: &Agent, name: &str) -> Option<String> {
        self.agent.clone_from(&a.name);
        let c = self.kubectl_cmd(&a.kubeconfig, &["apply", "-f", "-"]);
        let yaml = pod_yaml(name, false);
        let child = std::thread::spawn(move || run_with_stdin(c, Some(&yaml)));
        let id = self.approval_of(&a.name);
        let mut failure = None;
        if self.pod_exists(name) {
            failure = Some(format!("{}: pod {name} exists while held", a.name));
        }
        self.deny(&id);
        let out = child.join().unwrap();
        assert!(
            !out.status.success(),
            "{}: a denied pod was created: {}",
            a.name,
            text(&out)
        );
        if self.pod_exists(name) {
            failure = Some(format!("{}: pod {name} exists after the denial", a.name));
        }
        self.say(&format!(
            "{}: kubectl apply pod {name} -> HELD ({id}), DENIED; pod absent upstream",
            a.name
        ));
        failure
    }

    /// `kubectl apply` of pod `name` runs (no chain).
    fn pod_created(&mut self, a: &Agent, name: &str) {
        self.agent.clone_from(&a.name);
        let c = self.kubectl_cmd(&a.kubeconfig, &["apply", "-f", "-"]);
        let out = run_with_stdin(c, Some(&pod_yaml(name, false)));
        assert!(
            out.status.success(),
            "{}: pod {name}: {}",
            a.name,
            text(&out)
        );
        assert!(self.pod_exists(name), "{}: pod {name} not upstream", a.name);
        self.say(&format!("{}: kubectl apply pod {name} -> created", a.name));
    }

    /// A Kubernetes client run over SSH is held; the reviewer denies it; the command's
    /// marker file is never written on the host.
    fn ssh_held_then_denied(&mut self, a: &Agent) -> Option<String> {
        self.agent.clone_from(&a.name);
        let marker = self.home.path().join(format!("ran-{}", a.name));
        let command = format!(
            "kubectl --request-timeout=1s get pods >/dev/null 2>&1; touch {}",
            marker.display()
        );
        let mut c = self.ssh_cmd(&a.ssh);
        c.arg(&command);
        let child = std::thread::spawn(move || c.output().unwrap());
        let id = self.approval_of(&a.name);
        let mut failure = None;
        if marker.exists() {
            failure = Some(format!("{}: the held command ran", a.name));
        }
        self.deny(&id);
        let out = child.join().unwrap();
        assert_ne!(out.status.code(), Some(0), "{}: {}", a.name, text(&out));
        if marker.exists() {
            failure = Some(format!("{}: the denied command ran", a.name));
        }
        self.say(&format!(
            "{}: ssh '{command}' -> HELD ({id}), DENIED; marker absent",
            a.name
        ));
        failure
    }
}
