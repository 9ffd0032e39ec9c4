//! A frozen API server: the real `kubectl` gets a 504 `Status` after the target's
//! `response_timeout` instead of hanging, and the request's result is recorded as
//! that 504; a followed log that outlives the timeout is not cut.
//!
//! The upstream is `tests/kube-upstream` (no Kubernetes API server can be installed
//! on these machines), frozen with [`KubeUpstream::freeze`]: it reads requests and
//! answers none.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions};
use gatehouse_core::identity::{Authenticator, IssueRequest};
use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions, Sources};
use gatehouse_events::payload::{Payload, ResultStatus};
use gatehouse_kube_upstream::KubeUpstream;
use gatehouse_proxy_kubernetes::{KubeProxy, Options, tls};
use tokio::sync::watch;

const UPSTREAM_TOKEN: &str = "held-upstream-token-5be2";

struct Fixture {
    dir: tempfile::TempDir,
    upstream: KubeUpstream,
    kubeconfig: PathBuf,
    _stop: watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

impl Fixture {
    /// The proxy in front of a test upstream with `response_timeout = "1s"`, and a
    /// kubeconfig for an agent token.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = KubeUpstream::start(UPSTREAM_TOKEN);
        let mut config = Config::parse(&format!(
            "[[target]]\nname = \"dev-k8s\"\nprotocol = \"kubernetes\"\nupstream = \"{}\"\n\
             token = {{ value = \"{UPSTREAM_TOKEN}\" }}\nca = \"{}\"\nresponse_timeout = \"1s\"\n",
            upstream.url(),
            upstream.ca.display()
        ))
        .unwrap();
        config.validate().unwrap();
        config.data_dir = dir.path().to_owned();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = watch::channel(false);
        let data = dir.path().to_owned();
        let (port, token) = rt.block_on(async move {
            let log = Arc::new(EventLog::open(LogConfig::new(data.join("log"))).unwrap());
            let mut sources = Sources::new();
            sources.add(
                "t.rules",
                "rule reads { when k8s.verb in [get, list, watch] then allow }",
            );
            let policy = PolicyHandle::new(
                Policy::from_sources(sources, PolicyOptions::default()).unwrap(),
                PolicyOptions::default(),
            );
            let auth = Authenticator::from_config(&config, None).unwrap();
            let engine = Engine::open(EngineOptions::new("gw-k8s"), log, policy, auth).unwrap();
            let (token, _) = engine
                .issue_token(&IssueRequest {
                    agent: "agent:deploy-bot".into(),
                    target: "dev-k8s".into(),
                    ttl: Duration::from_secs(600),
                    on_behalf_of: None,
                    issued_by: None,
                })
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (cert, key) = tls::front_certificate(None, &data.join("kubernetes"), addr).unwrap();
            let options = Options::new(tls::server_config(&cert, &key).unwrap());
            let proxy = KubeProxy::new(engine, &config, options).unwrap();
            tokio::spawn(proxy.serve(listener, stopped));
            (addr.port(), token)
        });
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\n\
                 contexts:\n- name: k\n  context:\n    cluster: k\n    user: agent\ncurrent-context: k\n\
                 users:\n- name: agent\n  user:\n    token: {token}\n",
                dir.path().join("kubernetes/cert.pem").display()
            ),
        )
        .unwrap();
        Self {
            dir,
            upstream,
            kubeconfig,
            _stop: stop,
            _rt: rt,
        }
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let kubectl = gatehouse_testkit::find_program("kubectl", &[]).unwrap_or_else(|| {
            gatehouse_testkit::missing("kubectl (Debian package kubernetes-client)")
        });
        let mut c = Command::new(kubectl);
        c.arg("--request-timeout=30s")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().unwrap()
    }

    fn events(&self) -> Vec<gatehouse_events::Event> {
        let mut reader = LogReader::open(self.dir.path().join("log"), 0);
        let mut out = Vec::new();
        while let Some((_, e)) = reader.next_event().unwrap() {
            out.push(e);
        }
        out
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_frozen_api_server_gets_a_504_status_and_the_result_is_recorded() {
    let f = Fixture::start();
    // Discovery is cached under HOME while the server answers.
    let out = f.kubectl(&["get", "pods", "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pod/web"));

    f.upstream.freeze();
    let started = Instant::now();
    let out = f.kubectl(&["get", "pod", "web", "-o", "name"]);
    let took = started.elapsed();
    f.upstream.thaw();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a frozen server answered: {stderr}");
    assert!(
        stderr.contains("Error from server (Timeout)")
            && stderr
                .contains("gatehouse: the API server of target `dev-k8s` did not answer within 1s"),
        "kubectl should print the 504 Status: {stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // The request's result is the 504.
    let events = f.events();
    let request = events
        .iter()
        .find(|e| {
            matches!(&e.payload, Payload::RequestObserved(r)
                if r.command.contains("/pods/web"))
        })
        .expect("the request was recorded");
    let result = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::ResultObserved(r) if r.request == Some(request.id) => Some(r),
            _ => None,
        })
        .expect("the request's result was recorded");
    assert_eq!(result.status, ResultStatus::Error);
    assert_eq!(result.code.as_deref(), Some("504"));
    assert!(
        result
            .message
            .as_deref()
            .is_some_and(|m| m.contains("did not answer within 1s")),
        "{result:?}"
    );

    // Thawed, the server answers through the proxy again.
    let out = f.kubectl(&["get", "pod", "web", "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_followed_log_outlives_the_response_timeout() {
    let f = Fixture::start();
    let mut child = f
        .kubectl_cmd(&["logs", "-f", "web"])
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
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        "log line 1"
    );
    // Well past the 1s response timeout, the stream is still open.
    std::thread::sleep(Duration::from_millis(2500));
    f.upstream.release_logs();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "log line 2"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "log line 3 card 4111 1111 1111 1111"
    );
    let status = child.wait().unwrap();
    assert!(status.success());
}
