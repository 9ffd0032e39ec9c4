//! One session channel: collects its setup requests (pty, env; agent and X11
//! forwarding are refused), judges its exec / shell / subsystem request, opens the
//! matching upstream channel and relays both directions concurrently in one task.
//!
//! Per mode: exec output is masked when the rules ask and there is no PTY (never for
//! `scp -t/-f` or `rsync --server`); PTY shell input is reconstructed into lines
//! judged before their Enter is sent; non-PTY shell input is judged line by line;
//! SFTP requests naming a path are judged packet by packet.

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_core::engine::Decision;
use gatehouse_events::payload::{
    DataDirection, ResultObserved, ResultStatus, SshRequest, SshRequestKind,
};
use russh::client;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty};
use tokio::sync::mpsc;

use crate::ctx::{Ctx, Verdict};
use crate::line_editor::{Fed, LineEditor};
use crate::scp;
use crate::sftp;
use crate::shell::{Classified, Origin, classify, classify_as, transfer_kind};
use gatehouse_proxy_common::lines::LineMasker;

type FrontTx = ChannelWriteHalf<Msg>;
type UpTx = ChannelWriteHalf<client::Msg>;

/// Longest line of a non-PTY shell held back for judging.
const MAX_SCRIPT_LINE: usize = 64 * 1024;
/// Bytes of output kept as the result sample.
const SAMPLE_BYTES: usize = 512;

struct PtyRequest {
    term: String,
    cols: u32,
    rows: u32,
    pix_w: u32,
    pix_h: u32,
    modes: Vec<(Pty, u32)>,
}

enum Start {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// Runs one session channel to its end.
pub async fn run(ctx: Arc<Ctx>, mut front: Channel<Msg>) {
    let id: u32 = front.id().into();
    let mut pty: Option<PtyRequest> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let start = loop {
        let Some(msg) = front.wait().await else {
            return;
        };
        match msg {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                pty = Some(PtyRequest {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_w: pix_width,
                    pix_h: pix_height,
                    modes: terminal_modes,
                });
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(p) = &mut pty {
                    (p.cols, p.rows, p.pix_w, p.pix_h) =
                        (col_width, row_height, pix_width, pix_height);
                }
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } if env.len() < 64 => env.push((variable_name, variable_value)),
            ChannelMsg::AgentForward { .. } => {
                refuse_forwarding(&ctx, id, "auth-agent-req@openssh.com".into()).await;
            }
            ChannelMsg::RequestX11 { .. } => {
                refuse_forwarding(&ctx, id, "x11-req".into()).await;
            }
            ChannelMsg::Exec { command, .. } => break Start::Exec(command),
            ChannelMsg::RequestShell { .. } => break Start::Shell,
            ChannelMsg::RequestSubsystem { name, .. } => break Start::Subsystem(name),
            ChannelMsg::Eof | ChannelMsg::Close => return,
            _ => {}
        }
    };
    let (front_rx, front_tx) = front.split();
    let has_pty = pty.is_some();

    // `ssh -o SetEnv=GATEHOUSE_REASON=...`: the reason the agent states, recorded on
    // this and later requests of the connection and shown to reviewers.
    if let Some((_, reason)) = env.iter().rev().find(|(k, _)| k == "GATEHOUSE_REASON") {
        ctx.session.set_reason(reason);
    }
    // Judge the channel request (with the env requests before it, in one append).
    let mut requests: Vec<(String, gatehouse_events::payload::RequestDetail)> = env
        .iter()
        .map(|(k, v)| {
            (
                format!("env {k}={v}"),
                ctx.request(SshRequest {
                    kind: SshRequestKind::Env,
                    channel: id,
                    pty: has_pty,
                    path: Some(k.clone()),
                    ..SshRequest::default()
                }),
            )
        })
        .collect();
    let mut too_long = false;
    let mut scp_sink: Option<Option<String>> = None;
    let (command_text, mode) = match &start {
        Start::Exec(command) => {
            let text = String::from_utf8_lossy(command).into_owned();
            let c = classify(&text);
            let transfer = transfer_kind(&c.argv);
            too_long = c.too_long;
            scp_sink = c.scp_sink.clone();
            let request = command_request(&ctx, SshRequestKind::Exec, id, has_pty, c);
            requests.push((text.clone(), ctx.request(request)));
            (
                text,
                Mode::Exec {
                    transfer: transfer.is_some(),
                },
            )
        }
        Start::Shell => {
            requests.push((
                "shell".into(),
                ctx.request(SshRequest {
                    kind: SshRequestKind::Shell,
                    channel: id,
                    pty: has_pty,
                    ..SshRequest::default()
                }),
            ));
            (
                "shell".into(),
                if has_pty {
                    Mode::PtyShell
                } else {
                    Mode::Script
                },
            )
        }
        Start::Subsystem(name) if name == "sftp" => {
            requests.push((
                "subsystem sftp".into(),
                ctx.request(SshRequest {
                    kind: SshRequestKind::Sftp,
                    channel: id,
                    sftp_op: Some("start".into()),
                    ..SshRequest::default()
                }),
            ));
            ("subsystem sftp".into(), Mode::Sftp)
        }
        Start::Subsystem(name) => {
            requests.push((
                format!("subsystem {name}"),
                ctx.request(SshRequest {
                    kind: SshRequestKind::Subsystem,
                    channel: id,
                    path: Some(name.clone()),
                    ..SshRequest::default()
                }),
            ));
            (format!("subsystem {name}"), Mode::Exec { transfer: true })
        }
    };
    let decided = ctx.engine.decide_many(&ctx.session, requests).await;
    let (env_decisions, decided) = match decided {
        Ok(mut all) => {
            let last = all.pop();
            match last {
                Some(d) => (all, Ok(d)),
                None => (
                    Vec::new(),
                    Err(gatehouse_core::engine::EngineError::Policy(
                        "no decision".into(),
                    )),
                ),
            }
        }
        Err(e) => (Vec::new(), Err(e)),
    };
    let verdict = ctx.enforce(decided, |m| stderr_line(&front_tx, m)).await;
    let decision = match verdict {
        Verdict::Run(d) => *d,
        Verdict::Refused(m, code) => {
            refuse(&front_tx, &m, code).await;
            return;
        }
    };
    if too_long {
        // Never judged in part, whatever the policy says (the event says why).
        refuse(
            &front_tx,
            &format!(
                "gatehouse: the command line is over the {} KiB limit and was not run",
                crate::shell::MAX_LEN / 1024
            ),
            crate::EXIT_REFUSED,
        )
        .await;
        return;
    }
    let up = match ctx.upstream_ready(|m| stderr_line(&front_tx, m)).await {
        Ok(up) => up,
        Err((m, code)) => {
            refuse(&front_tx, &m, code).await;
            return;
        }
    };
    let upstream = match up.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            refuse(
                &front_tx,
                &format!("gatehouse: the target refused a channel: {e}"),
                crate::EXIT_GATEWAY_ERROR,
            )
            .await;
            return;
        }
    };
    let (up_rx, up_tx) = upstream.split();
    if let Some(p) = &pty {
        let _ = up_tx
            .request_pty(false, &p.term, p.cols, p.rows, p.pix_w, p.pix_h, &p.modes)
            .await;
    }
    for ((k, v), d) in env.iter().zip(&env_decisions) {
        // The guard's variables come from the gateway only.
        if d.runs() && !k.starts_with(crate::guard::ENV_PREFIX) {
            let _ = up_tx.set_env(false, k.clone(), v.clone()).await;
        }
    }
    if let Some(hub) = &ctx.guard {
        // The host's `gatehouse-guard` asks back on the connection's socket, with a
        // token that ties its questions to this channel (ADR 0023).
        let token = match hub.register(id) {
            Ok(t) => t,
            Err(e) => {
                refuse(
                    &front_tx,
                    &format!("gatehouse: {e}"),
                    crate::EXIT_GATEWAY_ERROR,
                )
                .await;
                return;
            }
        };
        let _ = up_tx
            .set_env(false, crate::guard::SOCKET_ENV, hub.path.clone())
            .await;
        let _ = up_tx.set_env(false, crate::guard::TOKEN_ENV, token).await;
    }
    let sent = match &start {
        Start::Exec(command) => up_tx.exec(false, command.clone()).await,
        Start::Shell => up_tx.request_shell(false).await,
        Start::Subsystem(name) => up_tx.request_subsystem(false, name.clone()).await,
    };
    if let Err(e) = sent {
        refuse(
            &front_tx,
            &format!("gatehouse: the target refused the request: {e}"),
            crate::EXIT_GATEWAY_ERROR,
        )
        .await;
        return;
    }
    let mask =
        matches!(mode, Mode::Exec { transfer: false }) && !has_pty && !decision.masks().is_empty();
    tracing::debug!(message = "SSH channel started.", session = %ctx.session.id, channel = id, command = %command_text, mask);
    let sink = scp_sink.map(|dest| std::sync::Mutex::new(scp::Sink::new(dest)));
    relay(
        &ctx,
        id,
        mode,
        mask,
        decision,
        sink.as_ref(),
        front_rx,
        &front_tx,
        up_rx,
        &up_tx,
    )
    .await;
}

/// How a channel's bytes are processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Exec (or a passthrough subsystem); `transfer` for scp/rsync servers.
    Exec { transfer: bool },
    /// Interactive shell with a PTY: lines reconstructed from keystrokes.
    PtyShell,
    /// Shell without a PTY: stdin is a script, judged line by line.
    Script,
    /// SFTP: requests judged packet by packet.
    Sftp,
}

async fn stderr_line(front: &FrontTx, message: String) {
    let _ = front
        .extended_data_bytes(1, Bytes::from(format!("{message}\r\n")))
        .await;
}

async fn refuse(front: &FrontTx, message: &str, code: u32) {
    stderr_line(front, message.to_owned()).await;
    let _ = front.exit_status(code).await;
    let _ = front.eof().await;
    let _ = front.close().await;
}

/// A session channel of a login whose session could not be opened: once the client
/// asks for a command, shell or subsystem, it gets `message` on stderr and exit
/// status 255. Nothing is judged or forwarded.
pub async fn refuse_session(mut front: Channel<Msg>, message: String) {
    loop {
        match front.wait().await {
            None | Some(ChannelMsg::Eof | ChannelMsg::Close) => return,
            Some(
                ChannelMsg::Exec { .. }
                | ChannelMsg::RequestShell { .. }
                | ChannelMsg::RequestSubsystem { .. },
            ) => break,
            Some(_) => {}
        }
    }
    let (_rx, tx) = front.split();
    refuse(&tx, &message, crate::EXIT_GATEWAY_ERROR).await;
}

/// Records a refused forwarding request (agent, X11, remote TCP) as an event.
pub async fn refuse_forwarding(ctx: &Ctx, channel: u32, what: String) {
    let decided = ctx
        .engine
        .decide(
            &ctx.session,
            what.clone(),
            ctx.request(SshRequest {
                kind: SshRequestKind::Forwarding,
                channel,
                path: Some(what),
                ..SshRequest::default()
            }),
        )
        .await;
    if let Ok(d) = decided {
        let _ = ctx
            .engine
            .record_result(
                &ctx.session,
                ResultObserved {
                    request: Some(d.request),
                    status: ResultStatus::Refused,
                    message: Some("forwarding is not supported by the gateway".into()),
                    ..ResultObserved::default()
                },
            )
            .await;
    }
}

/// Relays both directions until both ends are done.
#[expect(clippy::too_many_arguments, reason = "the two halves of two channels")]
async fn relay(
    ctx: &Ctx,
    id: u32,
    mode: Mode,
    mask: bool,
    decision: Decision,
    sink: Option<&std::sync::Mutex<scp::Sink>>,
    mut front_rx: ChannelReadHalf,
    front_tx: &FrontTx,
    mut up_rx: ChannelReadHalf,
    up_tx: &UpTx,
) {
    let (inject_tx, mut inject_rx) = mpsc::channel::<Bytes>(64);
    // Wakes the input side when the target replies in an scp upload.
    let replied = tokio::sync::Notify::new();
    // File transfers are counted, not recorded: their bytes are file contents.
    let transfer = matches!(mode, Mode::Exec { transfer: true } | Mode::Sftp);
    let started = std::time::Instant::now();
    let input = async {
        let mut rec = ctx.recorder(id, DataDirection::Input);
        let mut editor = LineEditor::new();
        let mut script = Script::default();
        let mut framer = sftp::Framer::default();
        let mut scp_eof = false;
        loop {
            let msg = tokio::select! {
                m = front_rx.wait() => m,
                // The target replied in an scp upload: held client bytes may go on.
                () = replied.notified(), if sink.is_some() => {
                    if let Some(sink) = sink {
                        if !scp_input(ctx, id, sink, Bytes::new(), front_tx, up_tx).await {
                            break;
                        }
                        if scp_eof && !sink.lock().is_ok_and(|s| s.waiting()) {
                            scp_eof = false;
                            let _ = up_tx.eof().await;
                        }
                    }
                    continue;
                }
            };
            let Some(msg) = msg else {
                break;
            };
            match msg {
                ChannelMsg::Data { data } => {
                    if transfer {
                        rec.total += data.len() as u64;
                    } else {
                        ctx.record(&mut rec, &data).await;
                    }
                    let ok = match mode {
                        Mode::Exec { .. } => match sink {
                            Some(sink) => scp_input(ctx, id, sink, data, front_tx, up_tx).await,
                            None => up_tx.data_bytes(data).await.is_ok(),
                        },
                        Mode::PtyShell => {
                            pty_input(ctx, id, &mut editor, &data, front_tx, up_tx).await
                        }
                        Mode::Script => {
                            script_input(ctx, id, &mut script, &data, false, front_tx, up_tx).await
                        }
                        Mode::Sftp => {
                            sftp_input(ctx, id, &mut framer, &data, &inject_tx, up_tx).await
                        }
                    };
                    if !ok {
                        break;
                    }
                }
                ChannelMsg::Eof => {
                    if mode == Mode::Script && !script.pending.is_empty() {
                        script_input(ctx, id, &mut script, &[], true, front_tx, up_tx).await;
                    }
                    // An scp upload's end waits for its held records: the target must
                    // not stop reading before the last one is judged and sent.
                    match sink {
                        Some(sink) if sink.lock().is_ok_and(|s| s.waiting()) => {
                            scp_eof = true;
                        }
                        _ => {
                            let _ = up_tx.eof().await;
                        }
                    }
                }
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    let _ = up_tx
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await;
                }
                ChannelMsg::Signal { signal } => {
                    let _ = up_tx.signal(signal).await;
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    let output = async {
        let mut rec_out = ctx.recorder(id, DataDirection::Output);
        let mut eof_pending = false;
        let mut rec_err = ctx.recorder(id, DataDirection::Error);
        let mut out_mask = LineMasker::default();
        let mut err_mask = LineMasker::default();
        let mut boundary = sftp::Boundary::default();
        let mut pending_inject: Vec<Bytes> = Vec::new();
        let mut exit: Option<String> = None;
        // The upstream went away (its connection dropped, or it closed the channel)
        // without an exit status: the client must be told, not left with a bare 255.
        let mut lost = false;
        let mut sample = Vec::<u8>::new();
        let masker = mask_fn(|s| decision.mask_value("", s));
        loop {
            let msg = tokio::select! {
                m = up_rx.wait() => m,
                Some(b) = inject_rx.recv(), if mode == Mode::Sftp => {
                    if boundary.at_boundary() {
                        let _ = front_tx.data_bytes(b).await;
                    } else {
                        pending_inject.push(b);
                    }
                    continue;
                }
            };
            let Some(msg) = msg else {
                lost = exit.is_none();
                break;
            };
            match msg {
                ChannelMsg::Data { data } => {
                    if let Some(sink) = sink {
                        let followed = sink
                            .lock()
                            .map_err(|_| "poisoned".to_owned())
                            .and_then(|mut s| s.from_target(&data).map_err(|e| e.to_string()));
                        match followed {
                            Ok(true) => replied.notify_one(),
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(message = "The scp stream went out of step; closing the channel.", session = %ctx.session.id, channel = id, error = %e);
                                stderr_line(
                                    front_tx,
                                    format!("gatehouse: {e}; the upload was stopped"),
                                )
                                .await;
                                let _ = front_tx.exit_status(crate::EXIT_GATEWAY_ERROR).await;
                                break;
                            }
                        }
                    }
                    let data = if mask {
                        Bytes::from(out_mask.push(&data, &masker))
                    } else {
                        data
                    };
                    if transfer {
                        rec_out.total += data.len() as u64;
                    } else {
                        ctx.record(&mut rec_out, &data).await;
                    }
                    if sample.len() < SAMPLE_BYTES && !transfer {
                        let n = (SAMPLE_BYTES - sample.len()).min(data.len());
                        sample.extend_from_slice(data.get(..n).unwrap_or(&[]));
                    }
                    let at_boundary =
                        mode == Mode::Sftp && boundary.advance(&data).unwrap_or(false);
                    if !data.is_empty() && front_tx.data_bytes(data).await.is_err() {
                        break;
                    }
                    if at_boundary {
                        for b in pending_inject.drain(..) {
                            let _ = front_tx.data_bytes(b).await;
                        }
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    let data = if mask {
                        Bytes::from(err_mask.push(&data, &masker))
                    } else {
                        data
                    };
                    ctx.record(&mut rec_err, &data).await;
                    if !data.is_empty() {
                        let _ = front_tx.extended_data_bytes(ext, data).await;
                    }
                }
                ChannelMsg::Eof => {
                    if mask {
                        flush_masks(
                            ctx,
                            &mut out_mask,
                            &mut err_mask,
                            &masker,
                            &mut rec_out,
                            &mut rec_err,
                            front_tx,
                        )
                        .await;
                    }
                    // Held until the exit status: a client that sees EOF both ways may
                    // close the channel before the status arrives (OpenSSH's
                    // ControlMaster then reports 255).
                    eof_pending = true;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    exit = Some(exit_status.to_string());
                    let _ = front_tx.exit_status(exit_status).await;
                    if std::mem::take(&mut eof_pending) {
                        let _ = front_tx.eof().await;
                    }
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                } => {
                    exit = Some(format!("signal:{signal_name:?}"));
                    let _ = ctx_handle_exit_signal(
                        front_tx,
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await;
                    if std::mem::take(&mut eof_pending) {
                        let _ = front_tx.eof().await;
                    }
                }
                ChannelMsg::Close => {
                    lost = exit.is_none();
                    if std::mem::take(&mut eof_pending) {
                        let _ = front_tx.eof().await;
                    }
                    break;
                }
                _ => {}
            }
        }
        if mask {
            flush_masks(
                ctx,
                &mut out_mask,
                &mut err_mask,
                &masker,
                &mut rec_out,
                &mut rec_err,
                front_tx,
            )
            .await;
        }
        (
            exit,
            rec_out.total + rec_err.total,
            out_mask.masked + err_mask.masked,
            sample,
            lost,
        )
    };
    tokio::pin!(input, output);
    let lost_message = || {
        format!(
            "gatehouse: the connection to target `{}` was lost before the command finished",
            ctx.target.name
        )
    };
    let (exit, bytes, masked, sample, lost) = tokio::select! {
        r = &mut output => {
            if r.4 {
                tracing::warn!(message = "SSH target went away mid-command.", session = %ctx.session.id, channel = id, target = %ctx.target.name);
                stderr_line(front_tx, lost_message()).await;
                let _ = front_tx.exit_status(crate::EXIT_GATEWAY_ERROR).await;
            }
            let _ = front_tx.close().await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut input).await;
            r
        }
        () = &mut input => {
            let _ = up_tx.close().await;
            // The client left first: nobody to tell about the upstream.
            let (exit, bytes, masked, sample, _) =
                tokio::time::timeout(std::time::Duration::from_secs(5), &mut output)
                    .await
                    .unwrap_or_default();
            (exit, bytes, masked, sample, false)
        }
    };
    if matches!(mode, Mode::Exec { .. })
        || mode == Mode::Sftp
        || mode == Mode::Script
        || mode == Mode::PtyShell
    {
        let status = match exit.as_deref() {
            Some("0") => ResultStatus::Ok,
            _ => ResultStatus::Error,
        };
        let result = ResultObserved {
            request: Some(decision.request),
            status,
            bytes: Some(bytes),
            message: lost.then(lost_message),
            code: exit.or_else(|| lost.then(|| crate::EXIT_GATEWAY_ERROR.to_string())),
            duration_us: Some(started.elapsed().as_micros() as u64),
            masked,
            sample: (!sample.is_empty()).then(|| String::from_utf8_lossy(&sample).into_owned()),
            ..ResultObserved::default()
        };
        if let Err(e) = ctx.engine.record_result(&ctx.session, result).await {
            tracing::warn!(message = "Cannot record a channel result.", session = %ctx.session.id, error = %e);
        }
    }
    let _ = front_tx.close().await;
}

fn mask_fn<F: for<'a> Fn(&'a str) -> std::borrow::Cow<'a, str>>(f: F) -> F {
    f
}

async fn ctx_handle_exit_signal(
    front: &FrontTx,
    signal: russh::Sig,
    core_dumped: bool,
    message: String,
    lang: String,
) -> Result<(), russh::Error> {
    // ChannelWriteHalf has no exit-signal helper; report it as stderr text and 255.
    let _ = (core_dumped, lang);
    let _ = front
        .extended_data_bytes(
            1,
            Bytes::from(format!(
                "gatehouse: remote command killed by signal {signal:?} {message}\r\n"
            )),
        )
        .await;
    front.exit_status(crate::EXIT_GATEWAY_ERROR).await
}

async fn flush_masks(
    ctx: &Ctx,
    out_mask: &mut LineMasker,
    err_mask: &mut LineMasker,
    masker: &(dyn Fn(&str) -> std::borrow::Cow<'_, str> + Sync),
    rec_out: &mut crate::record::Recorder,
    rec_err: &mut crate::record::Recorder,
    front: &FrontTx,
) {
    let rest = out_mask.finish(masker);
    if !rest.is_empty() {
        ctx.record(rec_out, &rest).await;
        let _ = front.data_bytes(Bytes::from(rest)).await;
    }
    let rest = err_mask.finish(masker);
    if !rest.is_empty() {
        ctx.record(rec_err, &rest).await;
        let _ = front.extended_data_bytes(1, Bytes::from(rest)).await;
    }
}

/// What a blocked shell line sends upstream: end of line, kill the line, empty Enter
/// (a fresh prompt). Works for readline (emacs and vi insert mode), zle, and a
/// canonical-mode TTY where Ctrl-U is the kill character.
const CANCEL_LINE: &[u8] = b"\x05\x15\r";

/// What a blocked line of several lines, or one in a bracketed paste, sends upstream:
/// the end of a paste (ends it where one is open; killed with the line elsewhere)
/// and Ctrl-C, which makes readline, zle and a canonical-mode TTY drop their whole
/// buffer. Ctrl-U would not: zle kills only the buffer's current line.
const CANCEL_BUFFER: &[u8] = b"\x1b[201~\x03";

/// What the Enter of a line that opens a construct (open quote, trailing `\`,
/// here-document, `for … do`) becomes upstream: a quoted newline (Ctrl-V Ctrl-J),
/// which readline, zle and a canonical-mode TTY put in the buffer without running
/// anything. The construct is judged whole at the Enter that completes it.
const CONTINUE_LINE: &[u8] = b"\x16\n";
/// The same when the cursor was not at the end of the line: end of line first.
const CONTINUE_AT_END: &[u8] = b"\x05\x16\n";

/// PTY input: forwards keystrokes as they come; holds each Enter until its line is
/// judged. Returns false when the upstream is gone.
async fn pty_input(
    ctx: &Ctx,
    id: u32,
    editor: &mut LineEditor,
    data: &[u8],
    front: &FrontTx,
    up: &UpTx,
) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        let (n, fed) = editor.feed(rest);
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        let line = match fed {
            Fed::Keys => {
                if up.data_bytes(Bytes::copy_from_slice(chunk)).await.is_err() {
                    return false;
                }
                continue;
            }
            Fed::Discarded => continue,
            Fed::Line(line) => line,
        };
        let (before, enter) = chunk.split_at(chunk.len().saturating_sub(1));
        if !before.is_empty() && up.data_bytes(Bytes::copy_from_slice(before)).await.is_err() {
            return false;
        }
        if line.reliable && line.text.trim().is_empty() {
            if up.data_bytes(Bytes::copy_from_slice(enter)).await.is_err() {
                return false;
            }
            continue;
        }
        // A construct still open is taken back, not judged in part. Not in a paste:
        // there, editors differ on whether a newline runs the buffer.
        if line.reliable && !line.pasted && crate::shell::incomplete(&line.text) {
            let keys = if line.at_end {
                CONTINUE_LINE
            } else {
                CONTINUE_AT_END
            };
            editor.reopen(&line);
            if up.data_bytes(Bytes::from_static(keys)).await.is_err() {
                return false;
            }
            continue;
        }
        let (decided, unsent) = judge_line(ctx, id, &line.text, true, line.why).await;
        let request = decided.as_ref().ok().map(|d| d.request);
        let verdict = ctx
            .enforce(decided, |m| async move {
                let _ = front.data_bytes(Bytes::from(format!("\r\n{m}\r\n"))).await;
            })
            .await;
        let refusal = match (verdict, unsent) {
            (Verdict::Run(_), None) => None,
            (Verdict::Run(_), Some(why)) => {
                let m = format!(
                    "gatehouse: line not sent: {why}; type it out in full, or use an exec channel"
                );
                // The policy allowed it; the log must still say it never ran.
                if let Some(request) = request {
                    let _ = ctx
                        .engine
                        .record_result(
                            &ctx.session,
                            ResultObserved {
                                request: Some(request),
                                status: ResultStatus::Refused,
                                message: Some(m.clone()),
                                ..ResultObserved::default()
                            },
                        )
                        .await;
                }
                Some(m)
            }
            (Verdict::Refused(m, _), _) => Some(m),
        };
        match refusal {
            None => {
                if up.data_bytes(Bytes::copy_from_slice(enter)).await.is_err() {
                    return false;
                }
            }
            Some(m) => {
                let cancel = if line.pasted || line.text.contains('\n') {
                    editor.discard_paste();
                    CANCEL_BUFFER
                } else {
                    CANCEL_LINE
                };
                let m = if line.pasted {
                    format!("{m} (the rest of the paste was dropped)")
                } else {
                    m
                };
                let _ = front.data_bytes(Bytes::from(format!("\r\n{m}\r\n"))).await;
                if up.data_bytes(Bytes::from_static(cancel)).await.is_err() {
                    return false;
                }
            }
        }
    }
    true
}

/// Judges a shell line. `edited`: the key that made the line unreliable, if any. With
/// a PTY, a line that changes what the line model relies on (`stty`, `bind`, aliases,
/// vi editing mode) is unreliable too. Returns the decision and, when the line must
/// not be sent whatever the policy says, why (also in the event's `ssh.parse_error`).
async fn judge_line(
    ctx: &Ctx,
    id: u32,
    text: &str,
    pty: bool,
    edited: Option<&str>,
) -> (
    Result<Decision, gatehouse_core::engine::EngineError>,
    Option<String>,
) {
    let mut c = classify_as(text, Origin::ShellLine);
    let mut unsent =
        edited.map(|k| format!("it was edited with {k}, which the gateway cannot follow"));
    if pty && unsent.is_none() {
        let state = c
            .programs
            .iter()
            .find(|p| {
                matches!(
                    p.as_str(),
                    "stty" | "bind" | "alias" | "unalias" | "tput" | "reset"
                )
            })
            .map(|p| {
                format!("`{p}` changes the terminal or line editing, which the gateway models")
            })
            .or_else(|| {
                c.commands
                    .iter()
                    .any(|k| {
                        k.starts_with("set -o vi")
                            || k.starts_with("set -o emacs")
                            || k.starts_with("set +o")
                    })
                    .then(|| {
                        "`set -o` changes the line editing mode, which the gateway models"
                            .to_owned()
                    })
            });
        unsent = state;
    }
    if let Some(why) = &unsent {
        c.parse_error
            .get_or_insert_with(|| format!("line not sent: {why}"));
    }
    let request = command_request(ctx, SshRequestKind::ShellLine, id, pty, c);
    let decided = ctx
        .engine
        .decide(&ctx.session, text.to_owned(), ctx.request(request))
        .await;
    (decided, unsent)
}

/// Non-PTY shell input not yet sent.
#[derive(Default)]
struct Script {
    pending: Vec<u8>,
    /// Bytes of `pending` known to end no complete unit (every line end before it was
    /// tried: the construct is still open).
    scanned: usize,
}

/// Non-PTY shell input (a script on stdin): judged before it is sent, a unit at a
/// time. A unit is a line, or the lines of a construct that spans lines (open quote,
/// trailing `\`, here-document, `for … do … done`), judged whole once complete: the
/// shell runs none of it before then. Comment lines are judged too. A unit over
/// [`MAX_SCRIPT_LINE`] is refused unjudged and dropped.
async fn script_input(
    ctx: &Ctx,
    id: u32,
    script: &mut Script,
    data: &[u8],
    eof: bool,
    front: &FrontTx,
    up: &UpTx,
) -> bool {
    script.pending.extend_from_slice(data);
    loop {
        let pending = &script.pending;
        let mut cut = None;
        let mut from = script.scanned;
        while let Some(i) = pending
            .get(from..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
        {
            let end = from + i + 1;
            let unit = String::from_utf8_lossy(pending.get(..end).unwrap_or_default());
            if !crate::shell::incomplete(unit.trim_end_matches(['\n', '\r'])) {
                cut = Some(end);
                break;
            }
            from = end;
        }
        let cut = match cut {
            Some(c) => c,
            None if eof && !pending.is_empty() => pending.len(),
            None if pending.len() > MAX_SCRIPT_LINE => {
                let n = pending.len();
                script.pending.clear();
                script.scanned = 0;
                stderr_line(
                    front,
                    format!("gatehouse: {n} bytes of input that do not end a command (over the {} KiB limit) were not sent", MAX_SCRIPT_LINE / 1024),
                )
                .await;
                continue;
            }
            None => {
                script.scanned = from;
                return true;
            }
        };
        script.scanned = 0;
        let unit: Vec<u8> = script.pending.drain(..cut).collect();
        let text = String::from_utf8_lossy(&unit);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            if up.data_bytes(Bytes::from(unit)).await.is_err() {
                return false;
            }
            continue;
        }
        let (decided, _) = judge_line(ctx, id, text, false, None).await;
        match ctx.enforce(decided, |m| stderr_line(front, m)).await {
            Verdict::Run(_) => {
                if up.data_bytes(Bytes::from(unit)).await.is_err() {
                    return false;
                }
            }
            Verdict::Refused(m, _) => stderr_line(front, m).await,
        }
        if eof && script.pending.is_empty() {
            return true;
        }
    }
}

/// Input of an `scp -t` upload: records naming a file or directory are judged as
/// file writes (`ssh.kind` `sftp`, `ssh.transfer` `scp`); a refused one is not sent,
/// and the client is told with the protocol's error reply and goes on with its next
/// file. Returns `false` when the channel must close.
async fn scp_input(
    ctx: &Ctx,
    id: u32,
    sink: &std::sync::Mutex<scp::Sink>,
    data: Bytes,
    front: &FrontTx,
    up: &UpTx,
) -> bool {
    // File contents with nothing held before them go on as they came.
    let direct = sink.lock().map_or(0, |mut s| s.contents_prefix(data.len()));
    if direct > 0 && up.data_bytes(data.slice(..direct)).await.is_err() {
        return false;
    }
    let step = |push: &[u8]| {
        let mut s = sink.lock().map_err(|_| scp::ScpError("poisoned".into()))?;
        s.push(push);
        s.next_step()
    };
    let mut push = data.get(direct..).unwrap_or_default();
    loop {
        let next = step(push);
        push = &[];
        let record = match next {
            Ok(None) => return true,
            Ok(Some(scp::Step::Forward(bytes))) => {
                if up.data_bytes(Bytes::from(bytes)).await.is_err() {
                    return false;
                }
                continue;
            }
            Ok(Some(scp::Step::Judge(r))) => r,
            Err(e) => {
                tracing::warn!(message = "Malformed scp stream; closing the channel.", session = %ctx.session.id, channel = id, error = %e);
                stderr_line(front, format!("gatehouse: {e}; the upload was stopped")).await;
                let _ = front.exit_status(crate::EXIT_GATEWAY_ERROR).await;
                let _ = front.eof().await;
                return false;
            }
        };
        let writes: Vec<String> = std::iter::once(record.path.clone())
            .chain(record.or_dest.clone())
            .collect();
        ctx.note_written(writes.iter().map(String::as_str));
        let decided = ctx
            .engine
            .decide(
                &ctx.session,
                format!("scp {} {}", record.op, record.path),
                ctx.request(SshRequest {
                    kind: SshRequestKind::Sftp,
                    channel: id,
                    sftp_op: Some(record.op.into()),
                    path: Some(record.path.clone()),
                    writes,
                    transfer: Some("scp".into()),
                    ..SshRequest::default()
                }),
            )
            .await;
        let verdict = match ctx.enforce(decided, |_| async {}).await {
            Verdict::Run(_) => record.bad_name.clone().map(|m| format!("gatehouse: {m}")),
            Verdict::Refused(m, _) => Some(m),
        };
        let sent = match verdict {
            None => {
                if let Ok(mut s) = sink.lock() {
                    s.sent();
                }
                up.data_bytes(Bytes::from(record.line)).await.is_ok()
            }
            Some(message) => {
                if let Ok(mut s) = sink.lock() {
                    s.refused();
                }
                let mut reply = vec![1u8];
                reply.extend(message.replace(['\n', '\r'], " ").bytes());
                reply.push(b'\n');
                front.data_bytes(Bytes::from(reply)).await.is_ok()
            }
        };
        if !sent {
            return false;
        }
    }
}

/// SFTP input: whole packets; those naming a path are judged; refused ones are
/// answered with a permission-denied status instead of being sent.
async fn sftp_input(
    ctx: &Ctx,
    id: u32,
    framer: &mut sftp::Framer,
    data: &[u8],
    inject: &mpsc::Sender<Bytes>,
    up: &UpTx,
) -> bool {
    framer.push(data);
    loop {
        let packet = match framer.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(message = "Malformed SFTP stream; closing the channel.", session = %ctx.session.id, error = %e);
                return false;
            }
        };
        let op = match sftp::operation(&packet) {
            Ok(op) => op,
            Err(e) => {
                tracing::warn!(message = "Malformed SFTP request; closing the channel.", session = %ctx.session.id, error = %e);
                return false;
            }
        };
        let Some(op) = op else {
            if up.data_bytes(packet).await.is_err() {
                return false;
            }
            continue;
        };
        if matches!(op.op, "write" | "rename" | "symlink" | "link" | "setstat") {
            ctx.note_written(std::iter::once(op.path.as_str()).chain(op.path2.as_deref()));
        }
        let command = match &op.path2 {
            Some(p2) => format!("sftp {} {} {}", op.op, op.path, p2),
            None => format!("sftp {} {}", op.op, op.path),
        };
        let decided = ctx
            .engine
            .decide(
                &ctx.session,
                command,
                ctx.request(SshRequest {
                    kind: SshRequestKind::Sftp,
                    channel: id,
                    sftp_op: Some(op.op.into()),
                    path: Some(op.path.clone()),
                    path2: op.path2.clone(),
                    ..SshRequest::default()
                }),
            )
            .await;
        match ctx.enforce(decided, |_| async {}).await {
            Verdict::Run(_) => {
                if up.data_bytes(packet).await.is_err() {
                    return false;
                }
            }
            Verdict::Refused(m, _) => {
                if inject
                    .send(sftp::permission_denied(op.id, &m))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
        }
    }
}

/// The request of an exec or a shell line, from its classification; remembers the
/// files the line writes (see `Ctx::written`).
fn command_request(
    ctx: &Ctx,
    kind: SshRequestKind,
    channel: u32,
    pty: bool,
    c: Classified,
) -> SshRequest {
    let runs_written = ctx.runs_written(&c);
    ctx.note_written(c.writes.iter().map(String::as_str));
    let transfer = (c.commands.len() == 1)
        .then(|| transfer_kind(&c.argv).map(str::to_owned))
        .flatten();
    SshRequest {
        kind,
        channel,
        pty,
        argv: c.argv,
        program: c.program,
        programs: c.programs,
        commands: c.commands,
        dynamic: c.dynamic,
        inline_code: c.inline_code,
        fed_code: c.fed_code,
        scripts: c.scripts,
        redirects: c.redirects,
        writes: c.writes,
        parse_error: c.parse_error,
        urls: c.urls,
        pivot: c.pivot,
        transfer,
        runs_written,
        ..SshRequest::default()
    }
}
