//! Three gateways as one, behind HAProxy (issue #25, ADR 0025): a real tansu broker,
//! the moto S3 server as the shared audit, PostgreSQL, sshd and a Kubernetes API
//! upstream, real psql, ssh and kubectl.
//!
//! - A chain whose three steps land on three gateways (psql on the first, ssh on the
//!   second, kubectl on the third) is held inline at its third step; the pod never
//!   reaches the Kubernetes API. The shippers wait 1 s (`linger.ms`), so only the
//!   cluster link can carry the first steps in time.
//! - One gateway is killed with SIGKILL during traffic through HAProxy: clients
//!   reconnect to the others and carry on (psql, ssh, kubectl).
//! - A request held on the dead gateway, retried, is judged again (held again); a
//!   time-boxed grant approved meanwhile on another gateway lets the retry run.
//! - Nothing is lost: once the dead gateway is back on its disk, every event of the
//!   three logs is in the events topic and in the shared audit on S3, every
//!   acknowledged statement among them; `audit sql` and `replay` read the shared
//!   audit; `cluster status` names the members.
//! - An SSH credential revoked on the third gateway is refused by the first.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatehouse_kube_upstream::KubeUpstream;
use gatehouse_testkit::{HaProxy, MotoS3};

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli};
use crate::support::{
    Gateway, Postgres, Sshd, Tansu, cursor, free_port, kafka_event_ids, output_text as text,
    wait_until,
};

const UPSTREAM_K8S_TOKEN: &str = "cluster-upstream-sa-token-51f2";
const AUDIT: &str = "s3://audit/cluster";

const SCHEMA: &str = "
CREATE TABLE ledger (id int PRIMARY KEY);
CREATE SCHEMA infra;
CREATE TABLE infra.hosts (hostname text, role text);
INSERT INTO infra.hosts VALUES ('localhost', 'bastion'), ('db-1.internal', 'database');
";

struct Ports {
    admin: u16,
    pg: u16,
    ssh: u16,
    k8s: u16,
}

struct Env<'a> {
    pg: &'a Postgres,
    sshd: &'a Sshd,
    k8s: &'a KubeUpstream,
    tansu: &'a Tansu,
    s3: &'a MotoS3,
    shared: &'a Path,
}

fn config(id: &str, p: &Ports, env: &Env<'_>, k8s_pair: Option<(PathBuf, PathBuf)>) -> String {
    let starter = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/starter.rules");
    let pair = k8s_pair
        .map(|(c, k)| {
            format!(
                "kubernetes_cert = \"{}\"\nkubernetes_key = \"{}\"\n",
                c.display(),
                k.display()
            )
        })
        .unwrap_or_default();
    format!(
        "gateway_id = \"{id}\"\n{admin}\n[policy]\nfiles = [\"{starter}\", \"{holds}\"]\n\
         [listen]\npostgres = \"127.0.0.1:{pg}\"\nssh = \"127.0.0.1:{ssh}\"\nkubernetes = \"127.0.0.1:{k8s}\"\n{pair}\
         [ssh]\nhost_key_file = \"{host_key}\"\n\
         [tokens]\nkey_file = \"{token_key}\"\n\
         [shipping.parquet]\nmax_age = \"1s\"\nstore = \"{AUDIT}\"\n\
         store_options = {{ endpoint = \"{endpoint}\", allow_http = \"true\", region = \"us-east-1\" }}\n\
         store_secret_options = {{ access_key_id = {{ env = \"GH_TEST_S3_KEY\" }}, secret_access_key = {{ env = \"GH_TEST_S3_SECRET\" }} }}\n\
         [shipping.kafka]\nbrokers = \"{brokers}\"\n\
         [shipping.kafka.properties]\n\"linger.ms\" = \"1000\"\n\
         [cluster]\nenabled = true\n\
         [[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{upstream_pg}\"\n\
         user = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ env = \"GH_TEST_PG_PASSWORD\" }}\n\
         [[target]]\nname = \"bastion\"\nprotocol = \"ssh\"\nupstream = \"localhost:{upstream_ssh}\"\n\
         user = \"{ssh_user}\"\nkey = {{ file = \"{ssh_key}\" }}\nhost_key = \"{ssh_host_key}\"\n\
         [[target]]\nname = \"prod-k8s\"\nprotocol = \"kubernetes\"\nupstream = \"{k8s_url}\"\n\
         token = {{ env = \"GH_TEST_K8S_TOKEN\" }}\nca = \"{k8s_ca}\"\n",
        admin = admin_config(p.admin),
        holds = env.shared.join("holds.rules").display(),
        pg = p.pg,
        ssh = p.ssh,
        k8s = p.k8s,
        host_key = env.shared.join("ssh_host_ed25519").display(),
        token_key = env.shared.join("token.ed25519").display(),
        endpoint = env.s3.endpoint(),
        brokers = env.tansu.brokers(),
        upstream_pg = env.pg.port,
        upstream_ssh = env.sshd.port,
        ssh_user = env.sshd.user,
        ssh_key = env.sshd.client_key.display(),
        ssh_host_key = env.sshd.host_public_key,
        k8s_url = env.k8s.url(),
        k8s_ca = env.k8s.ca.display(),
    )
}

fn start(dir: tempfile::TempDir, config: &str) -> Gateway {
    Gateway::start_full(
        dir,
        config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
            ("GH_TEST_PG_PASSWORD", Postgres::SERVICE_PASSWORD),
            ("GH_TEST_K8S_TOKEN", UPSTREAM_K8S_TOKEN),
            ("GH_TEST_S3_KEY", MotoS3::ACCESS_KEY),
            ("GH_TEST_S3_SECRET", MotoS3::SECRET_KEY),
        ],
    )
}

/// psql as the agent (`bin`: the server's psql, `Postgres::client`).
fn psql(bin: &Path, port: u16, token: &str, sql: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("PGSERVICE")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "etl", "-d", "app-db", "-X", "-At", "-c", sql])
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

/// Plain OpenSSH as the agent (`tests/e2e/ssh.rs`), to any of the gateways' ports.
struct SshClient {
    askpass: PathBuf,
    known_hosts: PathBuf,
}

impl SshClient {
    fn new(dir: &Path, host_key: &str, ports: &[u16]) -> Self {
        let known_hosts = dir.join("known_hosts");
        let lines: String = ports
            .iter()
            .map(|p| format!("[127.0.0.1]:{p} {host_key}\n"))
            .collect();
        std::fs::write(&known_hosts, lines).unwrap();
        Self {
            askpass: crate::ssh::write_askpass(dir),
            known_hosts,
        }
    }

    fn run(&self, port: u16, token: &str, command: &str) -> Output {
        crate::ssh::ssh_client(&self.askpass, &self.known_hosts, port, token, "etl+bastion")
            .arg(command)
            .output()
            .unwrap()
    }
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> Command {
    let bin = gatehouse_testkit::find_program("kubectl", &[]).unwrap_or_else(|| {
        gatehouse_testkit::missing("kubectl (Debian package kubernetes-client)")
    });
    let mut c = Command::new(bin);
    c.arg("--request-timeout=60s")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST");
    c
}

fn issue(admin: u16, target: &str, extra: &[&str]) -> String {
    issue_with_id(admin, target, extra).0
}

/// A token and its credential id.
fn issue_with_id(admin: u16, target: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "token", "issue", "--agent", "etl", "--target", target, "--ttl", "30m",
    ];
    args.extend_from_slice(extra);
    let out = cli(admin, ADMIN_TOKEN, &args);
    assert!(out.status.success(), "{}", text(&out));
    let credential = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .nth(1)
        .expect("the credential id on stderr")
        .to_owned();
    (
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        credential,
    )
}

/// Approval ids listed on a gateway.
fn pending(admin: u16) -> Vec<String> {
    let out = cli(admin, BOB_TOKEN, &["approvals", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("apr-"))
        .map(str::to_owned)
        .collect()
}

fn wait_new_approval(admin: u16, known: &[String]) -> String {
    let mut id = None;
    wait_until("a new approval request", Duration::from_secs(60), || {
        id = pending(admin).into_iter().find(|a| !known.contains(a));
        id.is_some()
    });
    id.unwrap()
}

/// `gatehouse` CLI with the S3 settings of the shared audit.
fn gatehouse_s3(s3: &MotoS3, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "gatehouse {args:?}: {}", text(&out));
    out
}

fn audit_rows(s3: &MotoS3, sql: &str) -> Vec<String> {
    let out = gatehouse_s3(
        s3,
        &["audit", "sql", "--audit-dir", AUDIT, "--format", "csv", sql],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn three_gateways_behind_haproxy_hold_a_chain_across_all_three_and_survive_a_crash() {
    let tansu = Tansu::start();
    let s3 = MotoS3::start("audit");
    let pg = Postgres::start();
    let out = pg.psql_app(&["-v", "ON_ERROR_STOP=1", "-c", SCHEMA]);
    assert!(out.status.success(), "{}", text(&out));
    let psql_bin = pg.client("psql").get_program().to_owned();
    let psql_bin = PathBuf::from(psql_bin);
    let sshd = Sshd::start();
    let k8s = KubeUpstream::start(UPSTREAM_K8S_TOKEN);
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(
        shared.path().join("holds.rules"),
        "rule hold_ledger_changes { when pg.statement.kind == alter and pg.statement.ddl_target == \"ledger\" then require approval from \"dba\" timeout 10m }\n",
    )
    .unwrap();
    let env = Env {
        pg: &pg,
        sshd: &sshd,
        k8s: &k8s,
        tansu: &tansu,
        s3: &s3,
        shared: shared.path(),
    };
    let ports: Vec<Ports> = (0..3)
        .map(|_| Ports {
            admin: free_port(),
            pg: free_port(),
            ssh: free_port(),
            k8s: free_port(),
        })
        .collect();
    // The first gateway makes the shared keys and the Kubernetes front certificate;
    // the others start with them, so a client cannot tell the gateways apart.
    let first = config("gw-1", &ports[0], &env, None);
    let gw1 = start(tempfile::tempdir().unwrap(), &first);
    let pair = (
        gw1.data().join("kubernetes/cert.pem"),
        gw1.data().join("kubernetes/key.pem"),
    );
    let configs = [
        first,
        config("gw-2", &ports[1], &env, Some(pair.clone())),
        config("gw-3", &ports[2], &env, Some(pair.clone())),
    ];
    let mut gws = vec![
        Some(gw1),
        Some(start(tempfile::tempdir().unwrap(), &configs[1])),
        Some(start(tempfile::tempdir().unwrap(), &configs[2])),
    ];
    let lb = HaProxy::start(&[
        ("pg", ports.iter().map(|p| p.pg).collect()),
        ("ssh", ports.iter().map(|p| p.ssh).collect()),
        ("k8s", ports.iter().map(|p| p.k8s).collect()),
    ]);

    let host_key = gws[0]
        .as_ref()
        .unwrap()
        .serve_log()
        .lines()
        .find_map(|l| {
            l.split("host_key=")
                .nth(1)
                .map(|k| k.trim().trim_matches('"').to_owned())
        })
        .expect("the gateway's SSH host key in its log");
    let home = tempfile::tempdir().unwrap();
    let mut ssh_ports: Vec<u16> = ports.iter().map(|p| p.ssh).collect();
    ssh_ports.push(lb.port("ssh"));
    let ssh = SshClient::new(home.path(), &host_key, &ssh_ports);

    // One agent, three credentials, issued on three gateways.
    let pg_token = issue(ports[0].admin, "app-db", &[]);
    let (ssh_token, ssh_credential) = issue_with_id(ports[1].admin, "bastion", &[]);
    let kube_direct = home.path().join("kubeconfig-gw3");
    let kube_lb = home.path().join("kubeconfig-lb");
    let ca = pair.0.to_str().unwrap().to_owned();
    for (path, port) in [(&kube_direct, ports[2].k8s), (&kube_lb, lb.port("k8s"))] {
        issue(
            ports[2].admin,
            "prod-k8s",
            &[
                "--kubeconfig",
                path.to_str().unwrap(),
                "--server",
                &format!("https://127.0.0.1:{port}"),
                "--ca",
                &ca,
            ],
        );
    }

    // --- A chain across three gateways, held inline at its last step. ---
    let out = psql(
        &psql_bin,
        ports[0].pg,
        &pg_token,
        "SELECT hostname, role FROM infra.hosts",
    )
    .output()
    .unwrap();
    assert!(
        out.status.success() && text(&out).contains("localhost"),
        "{}",
        text(&out)
    );
    let out = ssh.run(ports[1].ssh, &ssh_token, "uname -s");
    assert!(out.status.success(), "ssh on gw-2: {}", text(&out));
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pivot\n  namespace: default\nspec:\n  containers:\n  - name: main\n    image: busybox:1.36\n";
    let mut apply = kubectl(home.path(), &kube_direct, &["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), pod.as_bytes()).unwrap();
    let started = Instant::now();
    let held_pod = loop {
        if let Some(id) = pending(ports[0].admin).into_iter().next() {
            break id;
        }
        if let Some(status) = apply.try_wait().unwrap() {
            let out = apply.wait_with_output().unwrap();
            panic!(
                "kubectl apply ended ({status}) without being held: the chain's third step ran: {}",
                text(&out)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no approval request for the pod"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let shown = cli(ports[0].admin, BOB_TOKEN, &["approvals", "show", &held_pod]);
    let shown = text(&shown);
    assert!(
        shown.contains("pg_ssh_k8s") && shown.contains("chain so far"),
        "the approval names the chain and its steps: {shown}"
    );
    assert!(
        !k8s.requests()
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("/pods")),
        "the pod reached the Kubernetes API while held: {:?}",
        k8s.requests()
    );
    // Denied on the second gateway: the client on the third is refused.
    let out = cli(
        ports[1].admin,
        BOB_TOKEN,
        &["approvals", "deny", &held_pod, "--reason", "pivot"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = apply.wait_with_output().unwrap();
    assert!(!out.status.success(), "kubectl apply ran: {}", text(&out));
    assert!(
        !k8s.requests()
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("/pods")),
        "the denied pod reached the Kubernetes API"
    );

    // --- A request held on the gateway about to die. ---
    let held = psql(
        &psql_bin,
        ports[1].pg,
        &pg_token,
        "ALTER TABLE ledger ADD COLUMN a int",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let orphan = wait_new_approval(ports[0].admin, std::slice::from_ref(&held_pod));

    // --- Traffic through HAProxy; one gateway is killed with SIGKILL meanwhile. ---
    let lb_pg = lb.port("pg");
    let traffic = {
        let (bin, token) = (psql_bin.clone(), pg_token.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut failed = Vec::new();
            for i in 0..120 {
                let out = psql(
                    &bin,
                    lb_pg,
                    &token,
                    &format!("INSERT INTO ledger VALUES ({i})"),
                )
                .output()
                .unwrap();
                if out.status.success() {
                    acknowledged.push(i);
                } else {
                    failed.push((i, text(&out)));
                }
            }
            (acknowledged, failed)
        })
    };
    wait_until(
        "10 statements through HAProxy",
        Duration::from_secs(120),
        || {
            let out = pg.psql_app(&["-At", "-c", "SELECT count(*) FROM ledger"]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                >= 10
        },
    );
    let killed_at = Instant::now();
    let gw2_dir = gws[1].take().unwrap().kill9();
    let (acknowledged, failed) = traffic.join().unwrap();
    eprintln!(
        "{} statements acknowledged, {} failed around the crash ({} ms before the traffic ended): {failed:?}",
        acknowledged.len(),
        failed.len(),
        killed_at.elapsed().as_millis()
    );
    assert!(
        failed.len() <= 3,
        "clients did not carry on through the other gateways: {failed:?}"
    );
    assert!(acknowledged.len() >= 117);
    let out = pg.psql_app(&["-At", "-c", "SELECT id FROM ledger ORDER BY id"]);
    let rows: HashSet<i32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for i in &acknowledged {
        assert!(
            rows.contains(i),
            "acknowledged INSERT {i} is not in the table"
        );
    }
    // The client whose request was held on the dead gateway lost its connection.
    let out = held.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    // SSH and kubectl carry on through HAProxy.
    for _ in 0..3 {
        let out = ssh.run(lb.port("ssh"), &ssh_token, "echo carried-on");
        assert!(
            out.status.success() && text(&out).contains("carried-on"),
            "ssh through HAProxy after the crash: {}",
            text(&out)
        );
        let out = kubectl(home.path(), &kube_lb, &["get", "pods", "-A"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl through HAProxy after the crash: {}",
            text(&out)
        );
    }

    // --- The held request, retried, is judged again: held again, elsewhere. ---
    let retry = psql(
        &psql_bin,
        lb_pg,
        &pg_token,
        "ALTER TABLE ledger ADD COLUMN a int",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let again = wait_new_approval(ports[0].admin, &[held_pod.clone(), orphan.clone()]);
    let out = cli(
        ports[2].admin,
        BOB_TOKEN,
        &["approvals", "deny", &again, "--reason", "not yet"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = retry.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the retry ran though denied: {}",
        text(&out)
    );
    // The request held on the dead gateway is approved on another as a time-boxed
    // grant: the next retry runs.
    let out = cli(
        ports[0].admin,
        BOB_TOKEN,
        &["approvals", "approve", &orphan, "--for", "10m"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut ran = false;
    for _ in 0..50 {
        let out = psql(
            &psql_bin,
            lb_pg,
            &pg_token,
            "ALTER TABLE ledger ADD COLUMN a int",
        )
        .output()
        .unwrap();
        if out.status.success() {
            ran = true;
            break;
        }
        // The other gateway folds the grant within moments.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            text(&out).contains("approval") || text(&out).contains("held"),
            "{}",
            text(&out)
        );
    }
    assert!(ran, "the grant approved meanwhile never covered the retry");
    let out = pg.psql_app(&[
        "-At",
        "-c",
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ledger' AND column_name = 'a'",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    // --- The dead gateway comes back on its disk and ships what it had. ---
    gws[1] = Some(start(gw2_dir, &configs[1]));
    let gws: Vec<Gateway> = gws.into_iter().map(Option::unwrap).collect();
    for gw in &gws {
        wait_until(
            "every shipper at the end of its log",
            Duration::from_secs(120),
            || {
                let end = gw.events().len() as u64;
                cursor(&gw.data(), "kafka") >= end && cursor(&gw.data(), "parquet") >= end
            },
        );
    }
    let logged: HashSet<String> = gws
        .iter()
        .flat_map(|g| g.events())
        .map(|e| e.id.to_string())
        .collect();
    let (in_kafka, _) = kafka_event_ids(
        &tansu.brokers(),
        "gatehouse.events",
        logged.len(),
        Duration::from_secs(60),
    );
    let missing_kafka: Vec<&String> = logged.iter().filter(|id| !in_kafka.contains(*id)).collect();
    assert!(missing_kafka.is_empty(), "not in Kafka: {missing_kafka:?}");
    let in_audit: HashSet<String> = audit_rows(&s3, "SELECT DISTINCT event_id FROM events")
        .into_iter()
        .collect();
    let missing_audit: Vec<&String> = logged.iter().filter(|id| !in_audit.contains(*id)).collect();
    assert!(
        missing_audit.is_empty(),
        "{} events not in the shared audit: {missing_audit:?}",
        missing_audit.len()
    );
    // Every gateway wrote its own files; every acknowledged statement is there, as
    // run (the starter policy masks what an INSERT may return).
    let listed = Command::new("curl")
        .args(["-sf"])
        .arg(format!(
            "{}/audit?list-type=2&prefix=cluster/",
            s3.endpoint()
        ))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout);
    for id in ["gw-1", "gw-2", "gw-3"] {
        assert!(
            listing.contains(&format!("part-{id}-")),
            "no file of {id} in the store: {listing}"
        );
    }
    let inserted: HashSet<String> = audit_rows(
        &s3,
        "SELECT sql FROM statements WHERE sql LIKE 'INSERT INTO ledger%' AND effect IN ('allow', 'mask')",
    )
    .into_iter()
    .collect();
    for i in &acknowledged {
        assert!(
            inserted.contains(&format!("INSERT INTO ledger VALUES ({i})")),
            "acknowledged INSERT {i} is not in the shared audit as run"
        );
    }
    // The second step's session, made on the gateway that died, replays from S3.
    let session = audit_rows(
        &s3,
        "SELECT session_id FROM ssh_commands WHERE command = 'uname -s'",
    );
    let session = session.first().expect("the chain's ssh step in the audit");
    let replay = gatehouse_s3(
        &s3,
        &["replay", session, "--audit", AUDIT, "--format", "text"],
    );
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("uname -s"),
        "{}",
        text(&replay)
    );
    // `cluster status` on the first gateway names the other two, with no lag.
    let mut status = serde_json::Value::Null;
    wait_until("gw-1 folded everything", Duration::from_secs(30), || {
        let out = cli(
            ports[0].admin,
            ADMIN_TOKEN,
            &["cluster", "status", "--json"],
        );
        status = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status["lag_events"] == 0
    });
    let members: Vec<&str> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["gateway_id"].as_str())
        .collect();
    assert_eq!(members, ["gw-2", "gw-3"], "{status}");
    assert!(status["delay"]["samples"].as_u64().unwrap() > 0, "{status}");
    let out = cli(ports[0].admin, ADMIN_TOKEN, &["cluster", "status"]);
    assert!(text(&out).contains("replication delay"), "{}", text(&out));

    // The SSH credential, revoked on the third gateway, is refused on the first.
    let out = cli(
        ports[2].admin,
        ADMIN_TOKEN,
        &["token", "revoke", &ssh_credential],
    );
    assert!(out.status.success(), "{}", text(&out));
    let revoked = Instant::now();
    loop {
        let out = ssh.run(ports[0].ssh, &ssh_token, "echo still-in");
        if !text(&out).contains("still-in") {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(30),
            "gw-1 still accepts an SSH credential revoked on gw-3"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "SSH credential revoked on gw-3 refused by gw-1 after {} ms (ssh logins included)",
        revoked.elapsed().as_millis()
    );
    drop(lb);
}
