//! The Kubernetes API proxy through `gatehouse serve`, driven by the real `kubectl`
//! (Debian `kubernetes-client`).
//!
//! No Kubernetes API server can be installed on these machines, so the upstream is
//! `tests/kube-upstream`: a small HTTPS server with its own CA (pinned by the target)
//! and a bearer-token check, answering discovery and the resources these commands
//! use. Gatehouse forwards to it with the token it holds; kubectl only ever sees the
//! agent token in its kubeconfig.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatehouse_events::payload::{DataDirection, Effect, Payload, ResultStatus};
use gatehouse_kube_upstream::KubeUpstream;

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config, cli};
use crate::support::{Gateway, free_port, wait_until};

/// The token Gatehouse holds for the upstream: never shown to the agent.
const UPSTREAM_TOKEN: &str = "held-upstream-sa-token-7c41e0";

fn starter_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/starter.rules")
}

fn kubectl_bin() -> PathBuf {
    gatehouse_testkit::find_program("kubectl", &[])
        .unwrap_or_else(|| gatehouse_testkit::missing("kubectl (Debian package kubernetes-client)"))
}

/// A gateway with the Kubernetes proxy in front of a test upstream, and an agent
/// kubeconfig issued through the CLI.
struct Cluster {
    gw: Gateway,
    upstream: KubeUpstream,
    admin: u16,
    port: u16,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Cluster {
    fn start(rules: &Path) -> Self {
        let upstream = KubeUpstream::start(UPSTREAM_TOKEN);
        let admin = free_port();
        let port = free_port();
        let config = format!(
            "{}\n[policy]\nfiles = [\"{}\"]\n[listen]\nkubernetes = \"127.0.0.1:{port}\"\n\
             [[target]]\nname = \"dev-k8s\"\nprotocol = \"kubernetes\"\nupstream = \"{}\"\ntoken = {{ env = \"GH_TEST_K8S_TOKEN\" }}\nca = \"{}\"\n",
            admin_config(admin),
            rules.display(),
            upstream.url(),
            upstream.ca.display(),
        );
        let gw = Gateway::start_with_env(
            &config,
            &[
                ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
                ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
                ("GH_TEST_K8S_TOKEN", UPSTREAM_TOKEN),
            ],
        );
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        let mut c = Self {
            gw,
            upstream,
            admin,
            port,
            kubeconfig,
            home,
        };
        let kc = c.kubeconfig.clone();
        c.issue(&kc, &format!("https://127.0.0.1:{port}"));
        c
    }

    /// Issues an agent token and writes a kubeconfig for it.
    fn issue(&mut self, path: &Path, server: &str) -> String {
        let ca = self.gw.data().join("kubernetes/cert.pem");
        let out = cli(
            self.admin,
            ADMIN_TOKEN,
            &[
                "token",
                "issue",
                "--agent",
                "agent:deploy-bot",
                "--target",
                "dev-k8s",
                "--kubeconfig",
                path.to_str().unwrap(),
                "--server",
                server,
                "--ca",
                ca.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn kubectl_cmd(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.arg("--request-timeout=60s")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.home.path())
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(&self.kubeconfig, args).output().unwrap()
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.gw.serve_log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Ids of pending approvals, through the CLI as a reviewer.
    fn pending(&self) -> Vec<String> {
        let out = cli(self.admin, BOB_TOKEN, &["approvals", "list"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with("apr-"))
            .map(str::to_owned)
            .collect()
    }

    fn wait_pending(&self) -> String {
        let mut id = None;
        wait_until("an approval request", Duration::from_secs(30), || {
            id = self.pending().into_iter().next();
            id.is_some()
        });
        id.unwrap()
    }

    fn raw_log(&self) -> String {
        let raw = std::fs::read_dir(self.gw.data().join("log"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
            .concat();
        String::from_utf8_lossy(&raw).into_owned()
    }

    fn forwarded(&self, needle: &str) -> bool {
        self.upstream.requests().iter().any(|r| r.contains(needle))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: worker\n  namespace: default\nspec:\n  containers:\n  - name: worker\n    image: busybox:1.36\n    command: [\"sh\", \"-c\", \"sleep 3600\"]\n";
const PRIVILEGED: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: escape\n  namespace: default\nspec:\n  containers:\n  - name: root\n    image: alpine:3.20\n    securityContext:\n      privileged: true\n";
const HOSTPATH_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: node-reader\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: node-reader}\n  template:\n    metadata:\n      labels: {app: node-reader}\n    spec:\n      containers:\n      - name: r\n        image: alpine:3.20\n      volumes:\n      - name: host\n        hostPath: {path: /etc}\n";

#[test]
fn kubectl_gets_applies_and_deletes_while_privileged_pods_are_blocked() {
    let c = Cluster::start(&starter_rules());
    let pods = c.kubectl_ok(&["get", "pods", "-A"]);
    assert!(pods.contains("NAMESPACE"), "{pods}");
    assert!(pods.contains("web") && pods.contains("coredns"), "{pods}");

    let dir = c.home.path();
    let out = c.kubectl_ok(&["apply", "-f", write(dir, "pod.yaml", POD).to_str().unwrap()]);
    assert!(out.contains("pod/worker created"), "{out}");
    assert!(
        c.upstream
            .state
            .store
            .get("pods", "default", "worker")
            .is_some()
    );

    let out = c.kubectl(&[
        "apply",
        "-f",
        write(dir, "priv.yaml", PRIVILEGED).to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains(
                "privileged, host-namespace, host-mounting and escape-capable pods are not allowed"
            ),
        "{err}"
    );
    assert!(
        c.upstream
            .state
            .store
            .get("pods", "default", "escape")
            .is_none()
    );

    let out = c.kubectl(&[
        "apply",
        "-f",
        write(dir, "deploy.yaml", HOSTPATH_DEPLOYMENT)
            .to_str()
            .unwrap(),
    ]);
    assert!(stderr(&out).contains("(Forbidden)"), "{}", stderr(&out));
    assert!(
        c.upstream
            .state
            .store
            .get("deployments", "default", "node-reader")
            .is_none()
    );

    let out = c.kubectl_ok(&["delete", "pod", "worker"]);
    assert!(out.contains("pod \"worker\" deleted"), "{out}");
    assert!(
        c.upstream
            .state
            .store
            .get("pods", "default", "worker")
            .is_none()
    );

    // The events: the privileged pod's spec was parsed and blocked before forwarding.
    let events = c.gw.events();
    let parsed = events.iter().find_map(|e| match &e.payload {
        Payload::RequestObserved(r) => match &r.detail {
            gatehouse_events::payload::RequestDetail::Kubernetes(k)
                if k.pod.as_ref().is_some_and(|p| p.privileged) =>
            {
                Some(k.clone())
            }
            _ => None,
        },
        _ => None,
    });
    let k = parsed.expect("no request_observed with a privileged pod");
    assert_eq!((k.verb.as_str(), k.resource.as_str()), ("create", "pods"));
    assert_eq!(k.namespace.as_deref(), Some("default"));
    assert_eq!(k.pod.unwrap().images, ["alpine:3.20"]);
    assert!(events.iter().any(|e| matches!(&e.payload, Payload::DecisionMade(d) if d.effect == Effect::Block && d.rules.iter().any(|r| r == "k8s_privileged_pod"))));
    let deploy = events.iter().any(|e| matches!(&e.payload, Payload::RequestObserved(r) if matches!(&r.detail,
        gatehouse_events::payload::RequestDetail::Kubernetes(k) if k.resource == "deployments" && k.pod.as_ref().is_some_and(|p| p.host_paths == ["/etc"] && p.kind == "Deployment"))));
    assert!(deploy, "no parsed Deployment pod template");
    // Results are recorded with their HTTP status.
    assert!(events.iter().any(
        |e| matches!(&e.payload, Payload::ResultObserved(r) if r.code.as_deref() == Some("201"))
    ));
    assert!(events.iter().any(|e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused && r.code.as_deref() == Some("403"))));
    // The held credential never reached the agent, the events or the logs.
    assert!(
        !std::fs::read_to_string(&c.kubeconfig)
            .unwrap()
            .contains(UPSTREAM_TOKEN)
    );
    assert!(!c.raw_log().contains(UPSTREAM_TOKEN));
    assert!(!c.gw.serve_log().contains(UPSTREAM_TOKEN));
    assert_eq!(*c.upstream.state.unauthorized.lock().unwrap(), 0);
}

/// A client states why with `X-Gatehouse-Reason` (kubectl cannot add a header; any
/// other HTTPS client can): the request event records it.
#[test]
fn a_stated_reason_is_recorded_on_the_request() {
    let mut c = Cluster::start(&starter_rules());
    let kc = c.home.path().join("kubeconfig-reason");
    let token = c.issue(&kc, &format!("https://127.0.0.1:{}", c.port));
    let ca = c.gw.data().join("kubernetes/cert.pem");
    let script = format!(
        "import ssl, urllib.request\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         req = urllib.request.Request('https://127.0.0.1:{port}/api/v1/namespaces/default/pods',\n\
             headers={{'Authorization': 'Bearer {token}', 'X-Gatehouse-Reason': 'OPS-9: audit'}})\n\
         print(urllib.request.urlopen(req, context=ctx).status)\n",
        ca = ca.display().to_string(),
        port = c.port,
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "200",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let events = c.gw.events();
    assert!(
        events.iter().any(|e| matches!(&e.payload,
            Payload::RequestObserved(r) if r.reason.as_deref() == Some("OPS-9: audit"))),
        "no request carries the stated reason"
    );
}

#[test]
fn secret_values_are_masked_in_get_list_and_watch() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let c = Cluster::start(&starter_rules());
    let yaml = c.kubectl_ok(&["get", "secret", "db-credentials", "-o", "yaml"]);
    assert!(!yaml.contains(&b64("hunter2")), "{yaml}");
    assert!(
        yaml.contains(&format!("password: {}", b64("****"))),
        "{yaml}"
    );
    let decoded = c.kubectl_ok(&[
        "get",
        "secret",
        "db-credentials",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(decoded, b64("****"));
    let list = c.kubectl_ok(&["get", "secrets", "-o", "json"]);
    assert!(
        !list.contains(&b64("hunter2")) && list.contains("db-credentials"),
        "{list}"
    );
    let table = c.kubectl_ok(&["get", "secrets"]);
    assert!(table.contains("db-credentials"), "{table}");

    // Watch: events stream through masked.
    let mut watch = c
        .kubectl_cmd(&c.kubeconfig, &["get", "secrets", "--watch", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("db-credentials") && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&l);
        }
    }
    // A secret created while watching arrives masked too.
    wait_until("the watch request", Duration::from_secs(30), || {
        c.forwarded("watch=true") || c.forwarded("watch=1")
    });
    c.upstream.state.store.put(
        "secrets",
        serde_json::json!({"metadata": {"name": "api-key", "namespace": "default"}, "data": {"token": b64("s3cr3t-t0k3n")}}),
    );
    while !seen.contains("api-key") && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&l);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.contains("db-credentials") && seen.contains("api-key"),
        "{seen}"
    );
    assert!(
        !seen.contains(&b64("hunter2")) && !seen.contains(&b64("s3cr3t-t0k3n")),
        "{seen}"
    );
    // Nothing unmasked reached the audit log.
    let raw = c.raw_log();
    assert!(!raw.contains(&b64("hunter2")) && !raw.contains(&b64("s3cr3t-t0k3n")));
    let masked: u64 =
        c.gw.events()
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::ResultObserved(r) => Some(r.masked),
                _ => None,
            })
            .sum();
    assert!(masked >= 4, "masked {masked}");
}

#[test]
fn logs_follow_and_watch_stream_without_buffering() {
    let c = Cluster::start(&starter_rules());
    let mut child = c
        .kubectl_cmd(&c.kubeconfig, &["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // The first line arrives while the upstream still holds the rest of the stream.
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, "log line 1");
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    c.upstream.release_logs();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "log line 2"
    );
    // The starter masks the card number in the log like in any other output.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "log line 3 card **** **** **** 1111"
    );
    let status = child.wait().unwrap();
    assert!(status.success());
    // Not followed: the whole log, masked the same way.
    let out = c.kubectl_ok(&["logs", "web"]);
    assert!(out.contains("log line 3 card **** **** **** 1111"), "{out}");
    assert!(!out.contains("4111 1111"), "{out}");

    // A watch passes events through as they happen.
    let mut watch = c
        .kubectl_cmd(&c.kubeconfig, &["get", "pods", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "pod/web");
    wait_until("the watch request", Duration::from_secs(30), || {
        c.forwarded("watch=true") || c.forwarded("watch=1")
    });
    c.upstream.state.store.put(
        "pods",
        gatehouse_kube_upstream::store::pod("default", "late", "busybox:1.36"),
    );
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(line, "pod/late");

    let streamed = c.gw.events().iter().any(|e| {
        matches!(&e.payload, Payload::ResultObserved(r) if r.sample.as_deref() == Some("log line 1\nlog line 2\nlog line 3 card **** **** **** 1111\n"))
    });
    assert!(streamed, "the followed log's result was not recorded");
}

#[test]
fn exec_is_held_for_approval_then_runs_and_is_recorded() {
    let c = Cluster::start(&starter_rules());
    let mut child = c
        .kubectl_cmd(&c.kubeconfig, &["exec", "-i", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello from the agent\n").unwrap();
    drop(stdin);
    let id = c.wait_pending();
    assert!(!c.forwarded("/exec"), "exec forwarded before approval");
    let out = cli(c.admin, BOB_TOKEN, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("ran: cat") && stdout.contains("stdin: hello from the agent"),
        "{stdout}"
    );
    // Only the WebSocket upgrade was tried (no SPDY fallback) and it was recorded.
    let execs: Vec<String> = c
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.contains("/exec"))
        .collect();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert!(execs[0].starts_with("GET "), "{execs:?}");
    let events = c.gw.events();
    let data: Vec<(DataDirection, String)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::SessionData(d) => Some((d.direction, d.text.clone().unwrap_or_default())),
            _ => None,
        })
        .collect();
    assert!(
        data.iter()
            .any(|(d, t)| *d == DataDirection::Input && t.contains("hello from the agent")),
        "{data:?}"
    );
    assert!(
        data.iter()
            .any(|(d, t)| *d == DataDirection::Output && t.contains("stdin: hello from the agent")),
        "{data:?}"
    );
    let approval = events.iter().find_map(|e| match &e.payload {
        Payload::ApprovalRequested(a) => Some(a.command.clone()),
        _ => None,
    });
    assert_eq!(
        approval.as_deref(),
        Some("GET /api/v1/namespaces/default/pods/web/exec -c web -- cat")
    );

    // Denied: kubectl prints the refusal once, naming the approval; nothing runs.
    let child = c
        .kubectl_cmd(&c.kubeconfig, &["exec", "web", "--", "rm", "-rf", "/data"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = c.wait_pending();
    let out = cli(
        c.admin,
        BOB_TOKEN,
        &["approvals", "deny", &id, "--reason", "not in prod"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&id) && err.contains("denied by bob@example.com: not in prod"),
        "{err}"
    );
    assert!(
        c.pending().is_empty(),
        "a second approval was requested (SPDY fallback?)"
    );
    assert_eq!(
        c.upstream
            .requests()
            .iter()
            .filter(|r| r.contains("/exec"))
            .count(),
        1
    );
}

#[test]
fn exec_hold_that_times_out_names_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "short.rules",
        "default deny\nrule reads { when k8s.verb in [get, list, watch] then allow }\n\
         rule exec { when k8s.verb in [exec, attach] then require approval from \"sre-oncall\" timeout 2s }\n",
    );
    let c = Cluster::start(&rules);
    let started = Instant::now();
    let out = c.kubectl(&["exec", "web", "--", "id"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("apr-") && err.contains("expired before a reviewer decided"),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(!c.forwarded("/exec"));
    assert!(c.pending().is_empty());
}

#[test]
fn unparseable_requests_are_refused_and_never_forwarded() {
    let c = Cluster::start(&starter_rules());
    // Discovery is cached first: kubectl reports discovery failures without the
    // server's message.
    c.kubectl_ok(&["get", "pods"]);
    let before = c.upstream.requests().len();
    for (args, why) in [
        (
            vec!["get", "--raw", "/ui/index.html"],
            "is not a Kubernetes API path",
        ),
        (
            vec![
                "get",
                "--raw",
                "/api/v1/pods?labelSelector=a%3Db&labelSelector=c%3Dd",
            ],
            "given twice",
        ),
        (
            vec!["get", "pods", "--as=system:admin"],
            "headers are not allowed",
        ),
    ] {
        let out = c.kubectl(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains("gatehouse cannot parse this request") && err.contains(why),
            "{args:?}: {err}"
        );
    }
    // A pod body Gatehouse cannot read is refused too.
    let body = write(c.home.path(), "pod.txt", "kind: Pod\nthis is not json: [\n");
    let out = c.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods",
        "-f",
        body.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("is not JSON"), "{}", stderr(&out));
    let after: Vec<String> = c.upstream.requests().into_iter().skip(before).collect();
    assert!(
        after
            .iter()
            .all(|r| !r.contains("/ui/") && !r.contains("labelSelector") && !r.starts_with("POST")),
        "forwarded: {after:?}"
    );
    let refusals = c
        .gw
        .events()
        .iter()
        .filter(|e| matches!(&e.payload, Payload::DecisionMade(d) if d.effect == Effect::Block && d.reason.as_deref().is_some_and(|r| r.contains("cannot parse"))))
        .count();
    assert!(refusals >= 4, "{refusals} refusals");
}

#[test]
fn tokens_are_checked_and_federated_style_target_prefixes_work() {
    let mut c = Cluster::start(&starter_rules());
    // The `/targets/NAME` prefix: the token's own target is accepted, another is not.
    let prefixed = c.home.path().join("prefixed");
    c.issue(
        &prefixed,
        &format!("https://127.0.0.1:{}/targets/dev-k8s", c.port),
    );
    let out = c.kubectl_cmd(&prefixed, &["get", "pods"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = c.home.path().join("wrong");
    let token = c.issue(
        &wrong,
        &format!("https://127.0.0.1:{}/targets/prod-k8s", c.port),
    );
    let out = c.kubectl_cmd(&wrong, &["get", "pods"]).output().unwrap();
    assert!(
        stderr(&out).contains("Unauthorized") || stderr(&out).contains("logged in"),
        "{}",
        stderr(&out)
    );
    // A forged token is refused and recorded.
    let forged = c.home.path().join("forged");
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let agent = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_owned();
    let mut bad = agent.clone();
    bad.truncate(bad.len() - 4);
    bad.push_str("AAAA");
    std::fs::write(&forged, text.replace(&agent, &bad)).unwrap();
    let out = c.kubectl_cmd(&forged, &["get", "pods"]).output().unwrap();
    assert!(!out.status.success());
    // Revocation: the next request is refused.
    let id =
        c.gw.events()
            .iter()
            .find_map(|e| match &e.payload {
                Payload::CredentialIssued(i) => Some(i.credential_id.clone()),
                _ => None,
            })
            .unwrap();
    c.kubectl_ok(&["get", "pods"]);
    let out = cli(c.admin, ADMIN_TOKEN, &["token", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.kubectl(&["get", "pods"]);
    assert!(!out.status.success());
    let reasons: Vec<String> =
        c.gw.events()
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::AuthFailed(a) => Some(a.reason.clone()),
                _ => None,
            })
            .collect();
    for r in ["wrong_target", "bad_signature", "revoked"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "no auth_failed `{r}` in {reasons:?}"
        );
    }
    assert!(c.gw.events().iter().any(
        |e| matches!(&e.payload, Payload::SessionClosed(s) if s.reason == "credential revoked")
    ));
    let raw = c.raw_log();
    assert!(!raw.contains(&token) && !raw.contains(&agent) && !raw.contains(UPSTREAM_TOKEN));
    assert_eq!(*c.upstream.state.unauthorized.lock().unwrap(), 0);
}

#[test]
fn spdy_upgrades_are_judged_relayed_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "exec.rules",
        "default deny\nrule all_k8s { when protocol == kubernetes then allow }\n",
    );
    let c = Cluster::start(&rules);
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_owned();
    // kubectl falls back to SPDY only when WebSocket fails; speak it directly.
    let script = r#"
import socket, ssl, sys
port, ca, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
s.sendall(("POST /api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&stdout=true HTTP/1.1\r\n"
           "Host: 127.0.0.1\r\nAuthorization: Bearer " + token + "\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
           "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode())
frame = b"\x00\x00\x00\x03\x00\x00\x00\x06uptime"
s.sendall(frame)
echo = b""
while len(echo) < len(frame):
    echo += s.recv(100)
print("echo-ok" if echo == frame else "echo-bad")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &c.port.to_string()])
        .arg(c.gw.data().join("kubernetes/cert.pem"))
        .arg(&token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("101") && stdout.contains("echo-ok"),
        "{stdout}\n{}",
        stderr(&out)
    );
    wait_until("the SPDY data recorded", Duration::from_secs(10), || {
        c.gw.events().iter().filter(|e| matches!(&e.payload, Payload::SessionData(d) if d.channel == 3 && d.text.as_deref() == Some("uptime"))).count() == 2
    });
    let verb = c.gw.events().iter().find_map(|e| match &e.payload {
        Payload::RequestObserved(r) if r.command.contains("/exec") => {
            Some(r.detail.action().to_owned())
        }
        _ => None,
    });
    assert_eq!(verb.as_deref(), Some("exec"));
}
