//! Commands that act through a running gateway's admin API: `token`, `approvals`,
//! `sessions`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use gatehouse_admin::client::HttpClient;
use hyper::Method;
use serde_json::{Value, json};

/// How to reach the admin API.
#[derive(Debug, Args)]
pub struct Remote {
    /// Admin API base URL.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADMIN_URL",
        default_value = "http://127.0.0.1:7070"
    )]
    admin_url: String,
    /// Admin API bearer token (prefer the environment variable or `--admin-token-file`).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// File holding the admin API bearer token.
    #[arg(long, global = true, env = "GATEHOUSE_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.admin_token {
            return Ok(t.clone());
        }
        if let Some(p) = &self.admin_token_file {
            return Ok(std::fs::read_to_string(p)
                .with_context(|| format!("cannot read `{}`", p.display()))?
                .trim()
                .to_owned());
        }
        anyhow::bail!("no admin token: set GATEHOUSE_ADMIN_TOKEN or --admin-token-file")
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.admin_url.trim_end_matches('/'));
        let token = self.token()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = HttpClient::new(Duration::from_secs(30));
            Ok(client
                .json(method, &url, Some(&token), body.as_ref())
                .await?)
        })
    }
}

/// An approval with its context, as `approvals show` prints it.
fn render_approval(a: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}{}  target={}  rule={}  group={}  expires={}",
        field(a, "id"),
        field(a, "identity"),
        match field(a, "on_behalf_of") {
            "" => String::new(),
            p => format!(" (for {p})"),
        },
        field(a, "target"),
        field(a, "rule"),
        field(a, "group"),
        field(a, "deadline"),
    );
    let _ = writeln!(out, "  command: {}", field(a, "command"));
    for (label, key) in [
        ("does", "summary"),
        ("why", "message"),
        ("stated reason", "reason"),
    ] {
        if !field(a, key).is_empty() {
            let _ = writeln!(out, "  {label}: {}", field(a, key));
        }
    }
    let steps = a
        .get("chain")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !steps.is_empty() {
        let _ = writeln!(out, "  chain so far:");
        for s in steps {
            let _ = writeln!(
                out,
                "    {} {} {}: {}",
                field(&s, "time"),
                field(&s, "protocol"),
                field(&s, "target"),
                field(&s, "summary")
            );
            if let Some(c) = s.get("captured").and_then(Value::as_array)
                && !c.is_empty()
            {
                let values: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
                let _ = writeln!(out, "      read: {}", values.join(", "));
            }
            for c in s
                .get("then_ran")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let _ = writeln!(out, "      then ran: {c}");
            }
            if !field(&s, "reason").is_empty() {
                let _ = writeln!(out, "      stated reason: {}", field(&s, "reason"));
            }
            let _ = writeln!(out, "      event {}", field(&s, "event"));
        }
    }
    out
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an agent token bound to one target (printed on stdout, shown once).
    Issue(IssueArgs),
    /// Revoke a token: refused from now on; its live sessions are closed.
    Revoke {
        /// Token id (`tok_...`).
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `token issue` options.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Agent identity.
    #[arg(long)]
    agent: String,
    /// Target name.
    #[arg(long)]
    target: String,
    /// Lifetime, e.g. `15m` (default from the gateway config).
    #[arg(long)]
    ttl: Option<String>,
    /// Person the agent acts for.
    #[arg(long)]
    on_behalf_of: Option<String>,
    /// Write a kubeconfig for this token (Kubernetes targets) to this file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes API proxy URL for the kubeconfig.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: String,
    /// CA certificate (PEM) kubectl trusts for the gateway.
    #[arg(long)]
    ca: Option<PathBuf>,
}

/// Runs `token ...`.
pub fn token(cmd: TokenCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Issue(a) => {
            let v = remote.call(Method::POST, "/v1/tokens", Some(json!({ "agent": a.agent, "target": a.target, "ttl": a.ttl, "on_behalf_of": a.on_behalf_of })))?;
            let token = v
                .get("token")
                .and_then(Value::as_str)
                .context("no token in the response")?;
            if let Some(path) = &a.kubeconfig {
                write_kubeconfig(path, &a.target, &a.server, a.ca.as_deref(), token)?;
                eprintln!("wrote kubeconfig {} (context {})", path.display(), a.target);
            }
            if remote.json {
                println!("{v}");
            } else {
                println!("{token}");
                eprintln!(
                    "token {} for `{}` on target `{}` ({}), expires {}",
                    field(&v, "credential_id"),
                    a.agent,
                    field(&v, "target"),
                    field(&v, "protocol"),
                    field(&v, "expires_at")
                );
            }
        }
        TokenCommand::Revoke { id, reason } => {
            let v = remote.call(
                Method::DELETE,
                &format!("/v1/tokens/{id}"),
                Some(json!({ "reason": reason })),
            )?;
            if remote.json {
                println!("{v}");
            } else {
                println!(
                    "revoked {id}; closed {} live session(s)",
                    v.get("closed_sessions")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_kubeconfig(
    path: &std::path::Path,
    target: &str,
    server: &str,
    ca: Option<&std::path::Path>,
    token: &str,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let cluster = match ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        }
        None => String::new(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {target}\n  cluster:\n    server: {server}\n{cluster}contexts:\n- name: {target}\n  context:\n    cluster: {target}\n    user: gatehouse-{target}\ncurrent-context: {target}\nusers:\n- name: gatehouse-{target}\n  user:\n    token: {token}\n"
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// `approvals` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Requests waiting for a reviewer.
    List,
    /// One held request with its context: the rule's message, the stated reason,
    /// what it does, and the chain's earlier steps.
    Show {
        /// Approval id.
        id: String,
    },
    /// Time-boxed grants in force (from `approve --for`).
    Grants,
    /// Approve a held request (`--for 30m`: also allow the same identity, credential, target and rule for that long, up to `approvals.max_grant`).
    Approve {
        /// Approval id.
        id: String,
        /// Time-boxed grant.
        #[arg(long = "for")]
        valid_for: Option<String>,
    },
    /// End a time-boxed grant before its time (admins: any grant; reviewers: grants of their groups).
    RevokeGrant {
        /// The grant's approval id (see `approvals grants`).
        id: String,
        /// Reason (recorded in the event log).
        #[arg(long)]
        reason: String,
    },
    /// Deny a held request.
    Deny {
        /// Approval id.
        id: String,
        /// Reason (shown to the agent).
        #[arg(long)]
        reason: String,
    },
}

/// Runs `approvals ...`.
pub fn approvals(cmd: ApprovalsCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalsCommand::Grants => {
            let v = remote.call(Method::GET, "/v1/grants", None)?;
            if remote.json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let list = v
                .get("grants")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if list.is_empty() {
                println!("no grants in force");
            }
            for g in list {
                println!(
                    "{}  {}  credential={}  target={}  rule={}  group={}  until={}  by={}",
                    field(&g, "approval_id"),
                    field(&g, "identity"),
                    field(&g, "credential_id"),
                    field(&g, "target"),
                    field(&g, "rule"),
                    field(&g, "group"),
                    field(&g, "until"),
                    field(&g, "reviewer"),
                );
            }
        }
        ApprovalsCommand::List => {
            let v = remote.call(Method::GET, "/v1/approvals", None)?;
            if remote.json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let list = v
                .get("approvals")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if list.is_empty() {
                println!("no pending approvals");
            }
            for a in list {
                println!(
                    "{}  {}  target={}  rule={}  group={}  expires={}{}\n    {}",
                    field(&a, "id"),
                    field(&a, "identity"),
                    field(&a, "target"),
                    field(&a, "rule"),
                    field(&a, "group"),
                    field(&a, "deadline"),
                    if a.get("waiting").and_then(Value::as_bool) == Some(false) {
                        "  (client gone)"
                    } else {
                        ""
                    },
                    field(&a, "command"),
                );
                for (label, key) in [("why", "message"), ("reason", "reason")] {
                    if !field(&a, key).is_empty() {
                        println!("    {label}: {}", field(&a, key));
                    }
                }
            }
        }
        ApprovalsCommand::Show { id } => {
            let a = remote.call(Method::GET, &format!("/v1/approvals/{id}"), None)?;
            if remote.json {
                println!("{a}");
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                render_approval(a.get("approval").unwrap_or(&Value::Null))
            );
        }
        ApprovalsCommand::Approve { id, valid_for } => {
            let v = remote.call(
                Method::POST,
                &format!("/v1/approvals/{id}/approve"),
                Some(json!({ "for": valid_for })),
            )?;
            if remote.json {
                println!("{v}");
            } else {
                println!(
                    "approved {id}{}",
                    valid_for
                        .map(|d| format!(
                            " (and the same identity, credential, target and rule for {d})"
                        ))
                        .unwrap_or_default()
                );
            }
        }
        ApprovalsCommand::RevokeGrant { id, reason } => {
            let v = remote.call(
                Method::DELETE,
                &format!("/v1/grants/{id}"),
                Some(json!({ "reason": reason })),
            )?;
            if remote.json {
                println!("{v}");
            } else {
                println!("revoked grant {id}");
            }
        }
        ApprovalsCommand::Deny { id, reason } => {
            let v = remote.call(
                Method::POST,
                &format!("/v1/approvals/{id}/deny"),
                Some(json!({ "reason": reason })),
            )?;
            if remote.json {
                println!("{v}");
            } else {
                println!("denied {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The gateway's view of its cluster: how far it has folded each partition of
    /// the events topic, the lag, the other gateways seen and the replication delay.
    Status,
}

/// Runs a `cluster` subcommand.
pub fn cluster(cmd: ClusterCommand, remote: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        ClusterCommand::Status => {
            let v = remote.call(Method::GET, "/v1/cluster", None)?;
            if remote.json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let num = |v: &Value, k: &str| v.get(k).map(ToString::to_string).unwrap_or_default();
            let ms = |v: &Value, k: &str| {
                v.get(k)
                    .and_then(Value::as_f64)
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.1} ms"))
            };
            println!(
                "gateway {}  topic {}  lag {} record(s)",
                field(&v, "gateway_id"),
                field(&v, "topic"),
                num(&v, "lag_events")
            );
            println!("partitions:");
            for p in v
                .get("partitions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                println!(
                    "  {:>3}  folded {:>10}  end {:>10}  lag {}",
                    num(p, "partition"),
                    num(p, "folded"),
                    num(p, "end"),
                    num(p, "lag")
                );
            }
            println!("members seen:");
            let members = v
                .get("members")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if members.is_empty() {
                println!("  none yet (no event of another gateway folded since start)");
            }
            for m in members {
                println!(
                    "  {}  events {}  last {}  delay {}",
                    field(&m, "gateway_id"),
                    num(&m, "events"),
                    field(&m, "last_event"),
                    ms(&m, "last_delay_ms")
                );
            }
            let d = v.get("delay").cloned().unwrap_or_default();
            println!(
                "replication delay over {} event(s): p50 {}  p99 {}  max {}",
                num(&d, "samples"),
                ms(&d, "p50_ms"),
                ms(&d, "p99_ms"),
                ms(&d, "max_ms")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
