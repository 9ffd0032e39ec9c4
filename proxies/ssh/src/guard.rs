//! The gateway's side of the host guard (ADR 0023): on a guarded target, sshd
//! forwards a Unix socket back through the connection that owns the session; each
//! session channel's `gatehouse-guard` connects there, introduces itself with the
//! token this channel was given, and asks before every exec and connect of every
//! process it runs. Each question is a `process`, `connect` or `spawn` request of the session,
//! appended and judged like any other; the answer goes back on the same stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gatehouse_events::payload::{
    ResultObserved, ResultStatus, SshProcess, SshRequest, SshRequestKind,
};
use russh::ChannelMsg;
use russh::client::Msg;
use tokio::sync::mpsc;

use crate::ctx::{Ctx, Verdict};

/// Environment variable carrying the socket path to the guard.
pub const SOCKET_ENV: &str = "GATEHOUSE_GUARD_SOCKET";
/// Environment variable carrying the channel's token to the guard.
pub const TOKEN_ENV: &str = "GATEHOUSE_GUARD_TOKEN";
/// Prefix of the variables only the gateway sets.
pub const ENV_PREFIX: &str = "GATEHOUSE_GUARD_";
/// Longest line a guard may send (argv is capped at 1 MiB by the guard).
const MAX_LINE: usize = 4 << 20;
/// Live tasks between a guard's `spawn` questions (`ssh.process.tasks`).
pub const TASKS_STEP: usize = 16;
/// Most questions of one guard being judged at once; beyond it a question is refused
/// at once (a host that floods the gateway gets refusals, not memory).
const MAX_IN_FLIGHT: usize = 256;

/// One connection's guard socket and the tokens of its channels.
#[derive(Debug)]
pub struct GuardHub {
    /// The socket path on the host.
    pub path: String,
    tokens: Mutex<HashMap<String, u32>>,
}

fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness for the guard's socket")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl GuardHub {
    /// A hub with a fresh random socket path under `dir`.
    pub fn new(dir: &str) -> Result<Self, String> {
        Ok(Self {
            path: format!(
                "{}/gatehouse-guard-{}.sock",
                dir.trim_end_matches('/'),
                random_hex(16)?
            ),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// A token for the guard of `channel` (one use).
    pub fn register(&self, channel: u32) -> Result<String, String> {
        let token = random_hex(24)?;
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), channel);
        Ok(token)
    }

    fn take(&self, token: &str) -> Option<u32> {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token)
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &serde_json::Value, k: &str) -> String {
    v.get(k)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// argv as a shell would need it typed (for the event's text).
fn quote_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn basename(p: &str) -> String {
    crate::shell::basename(p).to_owned()
}

/// A request about the one program `process.exe` (a connect, a spawn, a task-limit
/// notice).
fn one_program(kind: SshRequestKind, channel: u32, process: SshProcess) -> SshRequest {
    let name = basename(&process.exe);
    SshRequest {
        kind,
        channel,
        program: Some(name.clone()),
        programs: vec![name],
        process: Some(process),
        ..SshRequest::default()
    }
}

/// The request a guard's question stands for, and the text of its event.
fn request(channel: u32, q: &serde_json::Value) -> Option<(String, SshRequest)> {
    let op = q.get("op")?.as_str()?;
    let pid = q
        .get("pid")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    let parents: Vec<String> = q
        .get("parents")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().map(|p| text(p, "exe")).collect())
        .unwrap_or_default();
    let exe = text(q, "exe");
    match op {
        "exec" | "killed" => {
            let killed = op == "killed";
            let argv = strings(q.get("argv").unwrap_or(&serde_json::Value::Null));
            let exe = if killed { text(q, "judged_exe") } else { exe };
            let interpreter = q
                .get("interpreter")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let mut programs = vec![basename(&exe)];
            if let Some(i) = &interpreter {
                programs.push(basename(i));
            }
            let shown = if killed {
                format!("killed at exec: {}", text(q, "loaded_exe"))
            } else {
                quote_argv(&argv)
            };
            Some((
                shown,
                SshRequest {
                    kind: SshRequestKind::Process,
                    channel,
                    argv,
                    program: Some(basename(&exe)),
                    programs,
                    process: Some(SshProcess {
                        pid,
                        exe,
                        cwd: text(q, "cwd"),
                        parents,
                        interpreter,
                        anonymous: q
                            .get("anonymous")
                            .and_then(serde_json::Value::as_bool)
                            .unwrap_or(false),
                        killed: killed.then(|| text(q, "loaded_exe")),
                        ..SshProcess::default()
                    }),
                    ..SshRequest::default()
                },
            ))
        }
        "limit" => {
            let max = q
                .get("max_tasks")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let shown = format!("task limit: {} killed", basename(&exe));
            Some((
                shown,
                one_program(
                    SshRequestKind::Process,
                    channel,
                    SshProcess {
                        pid,
                        exe,
                        parents,
                        killed: Some(format!(
                            "the session's limit of {max} processes and threads"
                        )),
                        ..SshProcess::default()
                    },
                ),
            ))
        }
        "spawn" => {
            let tasks = q
                .get("tasks")
                .and_then(serde_json::Value::as_u64)
                .map(|t| u32::try_from(t).unwrap_or(u32::MAX));
            let shown = format!(
                "spawn: {} makes task {}",
                basename(&exe),
                tasks.unwrap_or(0)
            );
            Some((
                shown,
                one_program(
                    SshRequestKind::Spawn,
                    channel,
                    SshProcess {
                        pid,
                        exe,
                        parents,
                        tasks,
                        ..SshProcess::default()
                    },
                ),
            ))
        }
        "connect" => {
            let address = text(q, "address");
            let port = q
                .get("port")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0);
            let shown = format!("connect {address} port {port} ({})", basename(&exe));
            Some((
                shown,
                one_program(
                    SshRequestKind::Connect,
                    channel,
                    SshProcess {
                        pid,
                        exe,
                        parents,
                        address: Some(address),
                        port: Some(port),
                        ..SshProcess::default()
                    },
                ),
            ))
        }
        _ => None,
    }
}

/// Serves one guard connection until it closes.
pub async fn serve(ctx: Arc<Ctx>, hub: Arc<GuardHub>, channel: russh::Channel<Msg>) {
    let (mut rx, tx) = channel.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if tx.data(line.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = tx.eof().await;
        let _ = tx.close().await;
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut channel_id: Option<u32> = None;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    'read: while let Some(msg) = rx.wait().await {
        let data = match msg {
            ChannelMsg::Data { data } => data,
            ChannelMsg::Eof | ChannelMsg::Close => break,
            _ => continue,
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(q) = serde_json::from_slice::<serde_json::Value>(&line) else {
                tracing::warn!(message = "A guard sent a line that is not JSON; closing its stream.", session = %ctx.session.id);
                break 'read;
            };
            let Some(channel) = channel_id else {
                // The first line must be the hello with this connection's token.
                let token = q.get("token").and_then(serde_json::Value::as_str);
                let known = (q.get("op").and_then(serde_json::Value::as_str) == Some("hello"))
                    .then_some(token)
                    .flatten()
                    .and_then(|t| hub.take(t));
                let Some(c) = known else {
                    let _ = out_tx.send(
                        "{\"ok\":false,\"message\":\"the gateway does not know this guard's token\"}\n"
                            .to_owned(),
                    );
                    break 'read;
                };
                channel_id = Some(c);
                let _ = out_tx.send(format!(
                    "{{\"ok\":true,\"max_tasks\":{},\"tasks_step\":{TASKS_STEP}}}\n",
                    ctx.target.guard_max_tasks
                ));
                continue;
            };
            let id = q.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let Some((shown, req)) = request(channel, &q) else {
                let _ = out_tx.send(answer(
                    id,
                    false,
                    Some("the gateway does not understand this question"),
                ));
                continue;
            };
            let is_notice = req.process.as_ref().is_some_and(|p| p.killed.is_some());
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                let _ = out_tx.send(answer(
                    id,
                    false,
                    Some("too many questions from this host at once"),
                ));
                continue;
            };
            let ctx = ctx.clone();
            let out_tx = out_tx.clone();
            // Each question is judged on its own task: a held approval does not stop
            // the session's other processes.
            tokio::spawn(async move {
                let _permit = permit;
                let decided = ctx
                    .engine
                    .decide(&ctx.session, shown, ctx.request(req))
                    .await;
                if is_notice {
                    return;
                }
                match ctx.enforce(decided, |_| async {}).await {
                    Verdict::Run(d) => {
                        // The request and its decision are in the log: answer first,
                        // then record that it proceeded.
                        let _ = out_tx.send(answer(id, true, None));
                        let _ = ctx
                            .engine
                            .record_result(
                                &ctx.session,
                                ResultObserved {
                                    request: Some(d.request),
                                    status: ResultStatus::Ok,
                                    ..ResultObserved::default()
                                },
                            )
                            .await;
                    }
                    Verdict::Refused(m, _) => {
                        let _ = out_tx.send(answer(id, false, Some(&m)));
                    }
                }
            });
        }
        if buf.len() > MAX_LINE {
            tracing::warn!(message = "A guard sent an over-long line; closing its stream.", session = %ctx.session.id);
            break;
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

fn answer(id: u64, allow: bool, message: Option<&str>) -> String {
    let v = match message {
        Some(m) => serde_json::json!({
            "id": id,
            "allow": allow,
            "message": m.trim_start_matches("gatehouse: "),
        }),
        None => serde_json::json!({ "id": id, "allow": allow }),
    };
    format!("{v}\n")
}
