//! The listener and the login of one client: startup packets, TLS, the token as the
//! password, the upstream session, then the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gatehouse_core::engine::{Enforcement, Engine, SessionInfo};
use gatehouse_events::EventId;
use gatehouse_events::Protocol;
use gatehouse_events::payload::{RequestDetail, ResultObserved, ResultStatus};
use gatehouse_proxy_common::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::PgProxy;
use crate::cancel::CancelTarget;
use crate::classify::SessionSql;
use crate::relay::{Relay, RelayOptions, run::SampleLimits};
use crate::upstream::{self, Connect};
use crate::wire::backend::{self, Report};
use crate::wire::frame;
use crate::wire::startup::{self, Startup};
use crate::wire::{FrameError, Reader};

/// Largest startup packet (PostgreSQL uses the same bound).
const MAX_STARTUP: usize = 10_000;
/// Largest password message (a token; OIDC tokens can be a few KiB).
const MAX_PASSWORD: usize = 64 * 1024;

/// Client parameters passed on to the upstream; others (`options`, `search_path`,
/// `replication`, ...) are not, so the session starts as the gateway knows it.
const FORWARDED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "bytea_output",
    "intervalstyle",
    "datestyle",
    "timezone",
];

enum Login {
    /// A session to relay.
    Session(Box<Ready>),
    /// The connection was a cancel request, or refused (already answered).
    Done,
}

struct Ready {
    client: Stream,
    /// The session's SQL state, with the startup settings applied.
    sql: SessionSql,
    upstream: upstream::Upstream,
    session: Arc<gatehouse_core::engine::Session>,
    cancel_target: CancelTarget,
}

impl PgProxy {
    /// Accepts clients until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let proxy = self.clone();
                        let stop = shutdown.clone();
                        tokio::spawn(async move { proxy.connection(tcp, peer, stop).await });
                    }
                    Err(error) => {
                        tracing::warn!(message = "Accept failed.", %error);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let login = tokio::time::timeout(self.options.login_timeout, self.login(tcp, peer)).await;
        let ready = match login {
            Ok(Ok(Login::Session(r))) => *r,
            Ok(Ok(Login::Done)) => return,
            Ok(Err(error)) => {
                tracing::info!(message = "Client login failed.", client = %peer, %error);
                return;
            }
            Err(_) => {
                tracing::info!(message = "Client login timed out.", client = %peer);
                return;
            }
        };
        let Ready {
            client,
            sql,
            upstream,
            session,
            cancel_target,
        } = ready;
        let cancel = cancel_target.cancelled.subscribe();
        let key = self.cancels.register(cancel_target);
        let mut hello = BytesMut::new();
        backend::authentication(&mut hello, 0);
        hello.extend_from_slice(&upstream.parameter_frames);
        backend::backend_key(&mut hello, key.0, key.1);
        backend::ready(&mut hello, b'I');
        let mut client = client;
        if client.write_all(&hello).await.is_err() {
            self.cancels.remove(key);
            self.engine.close_session(&session, "client_closed").await;
            return;
        }
        let relay = Relay::new(
            self.engine.clone(),
            session.clone(),
            self.cache.clone(),
            RelayOptions {
                max_message: self.options.max_message,
                sample: SampleLimits {
                    rows: self.options.sample_rows,
                    bytes: self.options.sample_bytes,
                },
                pids: (upstream.key.0, key.0),
                busy_poll: self.options.busy_poll,
                load: self.load.clone(),
                cancel,
                max_statements: self.options.max_statements,
                heavy: self.heavy.clone(),
                catalog: self.catalogs.get(&session.principal.target).cloned(),
            },
            sql,
            upstream.leftover,
        );
        let end = relay.run(client, upstream.stream, shutdown).await;
        self.cancels.remove(key);
        match &end {
            crate::relay::End::Protocol(e) => {
                tracing::warn!(message = "Protocol violation; session closed.", session = %session.id, error = %e);
            }
            crate::relay::End::Io(e) => {
                tracing::info!(message = "Connection error; session closed.", session = %session.id, error = %e);
            }
            _ => {}
        }
        self.engine.close_session(&session, &end.reason()).await;
    }

    async fn login(&self, tcp: TcpStream, peer: SocketAddr) -> Result<Login, FrameError> {
        let mut stream = Stream::Plain(tcp);
        let mut buf = BytesMut::with_capacity(1024);
        let (minor, params) = loop {
            let packet = read_startup(&mut stream, &mut buf).await?;
            match startup::decode(&packet) {
                Ok(Startup::Ssl) => {
                    if !buf.is_empty() {
                        // Bytes sent after SSLRequest before the handshake could be
                        // injected by a man in the middle.
                        return Err(FrameError::Malformed(
                            "SSLRequest",
                            "data after the request",
                        ));
                    }
                    match (&self.options.tls, stream) {
                        (Some(tls), Stream::Plain(mut tcp)) => {
                            tcp.write_all(b"S").await.map_err(io)?;
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                            let tls = acceptor.accept(tcp).await.map_err(io)?;
                            stream = Stream::Server(Box::new(tls));
                        }
                        (_, mut s) => {
                            s.write_all(b"N").await.map_err(io)?;
                            stream = s;
                        }
                    }
                }
                Ok(Startup::GssEnc) => stream.write_all(b"N").await.map_err(io)?,
                Ok(Startup::Cancel { pid, secret }) => {
                    self.cancel((pid, secret), peer).await;
                    return Ok(Login::Done);
                }
                Ok(Startup::Params { minor, params }) => break (minor, params),
                Err(e) => {
                    refuse(
                        &mut stream,
                        Report::fatal("08P01", format!("protocol violation: {e}")),
                    )
                    .await;
                    return Err(e);
                }
            }
        };
        let user = Startup::param(&params, "user")
            .unwrap_or_default()
            .to_owned();
        let database = Startup::param(&params, "database").map(str::to_owned);
        if Startup::param(&params, "replication")
            .is_some_and(|r| r != "false" && r != "0" && r != "off")
        {
            refuse(
                &mut stream,
                Report::fatal(
                    "28000",
                    "replication connections are not available through the gateway",
                ),
            )
            .await;
            return Ok(Login::Done);
        }
        let mut hello = BytesMut::new();
        let unknown: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.clone())
            .collect();
        if minor > 0 || !unknown.is_empty() {
            backend::negotiate_protocol(&mut hello, 0, &unknown);
        }
        if !stream.is_tls() && !peer.ip().is_loopback() && !self.options.allow_plaintext_password {
            refuse(
                &mut stream,
                Report::fatal("28000", "the gateway accepts tokens over TLS only")
                    .with_hint("connect with sslmode=require"),
            )
            .await;
            return Ok(Login::Done);
        }
        backend::authentication(&mut hello, 3);
        stream.write_all(&hello).await.map_err(io)?;
        let token = read_password(&mut stream, &mut buf).await?;
        let requested = database
            .as_deref()
            .filter(|d| self.config.target(d).is_some());
        let principal = match self
            .engine
            .authenticate(
                &token,
                Protocol::Postgres,
                requested,
                Some(peer),
                Some(&user),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                refuse(
                    &mut stream,
                    Report::fatal("28P01", format!("gatehouse: {e}")),
                )
                .await;
                return Ok(Login::Done);
            }
        };
        drop(token);
        let Some(target) = self.config.target(&principal.target) else {
            refuse(
                &mut stream,
                Report::fatal(
                    "08006",
                    format!("gatehouse: target `{}` is not configured", principal.target),
                ),
            )
            .await;
            return Ok(Login::Done);
        };
        let password = match target.password.as_ref().map(|p| p.resolve()).transpose() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(message = "Cannot resolve a target credential.", target = %target.name, error = %e);
                refuse(
                    &mut stream,
                    Report::fatal(
                        "08006",
                        format!(
                            "gatehouse cannot use the credential of target `{}`",
                            target.name
                        ),
                    ),
                )
                .await;
                return Ok(Login::Done);
            }
        };
        let settings = match crate::settings::from_startup(&params, FORWARDED) {
            Ok(s) => s,
            Err(e) => {
                refuse(
                    &mut stream,
                    Report::fatal("22023", format!("gatehouse: {e}")),
                )
                .await;
                return Ok(Login::Done);
            }
        };
        let info = SessionInfo {
            client_addr: Some(peer),
            login: Some(user.clone()),
            auth_method: Some(if stream.is_tls() {
                "token-password-tls".into()
            } else {
                "token-password".into()
            }),
            upstream_host: Some(target.upstream.clone()),
            client_application: Startup::param(&params, "application_name").map(str::to_owned),
        };
        let session = match self.engine.open_session(principal, info).await {
            Ok(s) => s,
            Err(e) => {
                refuse(
                    &mut stream,
                    Report::fatal(
                        "58000",
                        format!("gatehouse cannot record the session, so it is refused: {e}"),
                    ),
                )
                .await;
                return Ok(Login::Done);
            }
        };
        // Until the session is handed to the relay, a refusal or a login timeout ends
        // it in the log.
        let opened = OpenedSession {
            engine: self.engine.clone(),
            session: Some(session.clone()),
        };
        let mut sql = SessionSql::new(target.user.clone().unwrap_or_default());
        // PostgreSQL's default database is the user's name.
        sql.database = target.database.clone().unwrap_or_else(|| sql.user.clone());
        // The server starts the session on a database's or role's default search path.
        if let Some(catalog) = self.catalogs.get(&target.name) {
            let snap = catalog.snapshot().await;
            if let Some(path) = snap.session_default(&sql.database, &sql.user, "search_path") {
                sql.default_search_path(&path);
            }
        }
        // Settings asked for at startup are judged as the SETs they amount to.
        let applied = match self.judge_settings(&session, &mut sql, &settings).await {
            Ok(a) => a,
            Err(report) => {
                refuse(&mut stream, report).await;
                opened.close("refused").await;
                return Ok(Login::Done);
            }
        };
        // PostgreSQL applies `options` before the packet's other parameters, so they
        // come first (a later duplicate wins, as it would directly).
        let mut forwarded: Vec<(String, String)> = settings
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect();
        forwarded.extend(
            params
                .iter()
                .filter(|(k, _)| FORWARDED.contains(&k.as_str()))
                .cloned(),
        );
        let tls = self.upstream_tls.get(&target.name).cloned();
        let upstream = match upstream::connect(Connect {
            target,
            password: password.as_ref(),
            tls: tls.clone(),
            params: &forwarded,
            timeout: self.options.connect_timeout,
            keys: &self.scram_keys,
        })
        .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(message = "Cannot open the upstream session.", target = %target.name, error = %e);
                let report = match &e {
                    // A setting the client asked for was refused by the server: its
                    // own error, as a direct connection would see it.
                    upstream::UpstreamError::Refused { code, message }
                        if !settings.is_empty()
                            && (code.starts_with("22") || code.starts_with("42")) =>
                    {
                        Report::fatal(setting_error_code(code), message.clone())
                    }
                    upstream::UpstreamError::Refused { code, message }
                        if code.starts_with("3D") || code.starts_with("53") =>
                    {
                        Report::fatal(
                            "08006",
                            format!(
                                "gatehouse: the upstream of target `{}` refused the session: {message}",
                                target.name
                            ),
                        )
                    }
                    // Which step timed out, and the setting, without the address.
                    upstream::UpstreamError::Timeout { step, after, .. } => Report::fatal(
                        "08006",
                        format!(
                            "gatehouse cannot open a session on target `{}`: timed out after {} (`postgres.connect_timeout`) during {step}",
                            target.name,
                            upstream::humantime(*after)
                        ),
                    ),
                    _ => Report::fatal(
                        "08006",
                        format!(
                            "gatehouse cannot open a session on target `{}`",
                            target.name
                        ),
                    ),
                };
                self.settings_result(&session, &applied, Some(&report))
                    .await;
                refuse(&mut stream, report).await;
                opened.close("upstream_refused").await;
                return Ok(Login::Done);
            }
        };
        self.settings_result(&session, &applied, None).await;
        sql.backslash_strings = upstream
            .parameters
            .iter()
            .any(|(k, v)| k == "standard_conforming_strings" && v != "on");
        opened.handed_over();
        Ok(Login::Session(Box::new(Ready {
            sql,
            client: stream,
            cancel_target: CancelTarget {
                upstream: target.upstream.clone(),
                tls,
                key: upstream.key,
                cancelled: Arc::new(watch::channel(0).0),
            },
            upstream,
            session,
        })))
    }

    /// Judges the settings of the startup packet as the `SET`s they amount to (one
    /// event each, phase `startup`) and applies them to `sql`. Returns the requests'
    /// ids, or the refusal for the client (its results recorded). A setting held for
    /// approval is refused: a login cannot wait for a reviewer.
    async fn judge_settings(
        &self,
        session: &Arc<gatehouse_core::engine::Session>,
        sql: &mut SessionSql,
        settings: &[crate::settings::Setting],
    ) -> Result<Vec<EventId>, Report> {
        if settings.is_empty() {
            return Ok(Vec::new());
        }
        let mut requests = Vec::with_capacity(settings.len());
        for s in settings {
            let text = s.statement();
            let c = match crate::classify::classify(&text, 1) {
                Ok(mut v) if v.len() == 1 => v.remove(0),
                _ => crate::classify::unparsed(&text, "a startup setting that is not one SET"),
            };
            let mut stmt = sql.startup(&c);
            stmt.phase = "startup".into();
            if let Some(crate::classify::SqlEffect::Reason(r)) = &c.effect {
                session.set_reason(r);
            }
            requests.push((text, RequestDetail::Postgres(stmt)));
        }
        let decisions = self
            .engine
            .decide_many(session, requests)
            .await
            .map_err(|e| {
                Report::fatal(
                    "58000",
                    format!("gatehouse cannot judge the startup settings, so the session is refused: {e}"),
                )
            })?;
        let ids: Vec<EventId> = decisions.iter().map(|d| d.request).collect();
        for d in &decisions {
            let report = match d.enforcement() {
                Enforcement::Run => continue,
                Enforcement::Refuse(r) => Report::fatal("42501", r.message),
                Enforcement::Hold { .. } => {
                    if let Err(error) = self
                        .engine
                        .withdraw_approval(d, "a startup setting cannot wait for a reviewer")
                        .await
                    {
                        tracing::warn!(message = "Cannot withdraw an approval request.", %error);
                    }
                    Report::fatal(
                        "42501",
                        format!(
                            "gatehouse: this startup setting needs approval ({}), and a login cannot wait for it",
                            d.message.as_deref().unwrap_or("a reviewer must approve it")
                        ),
                    )
                    .with_hint("connect without it and send it as SET: the statement waits for the reviewer")
                }
            };
            let report = report.with_detail(format!(
                "refused by the Gatehouse policy (startup setting, request {}{})",
                d.request,
                if d.rules.is_empty() {
                    String::new()
                } else {
                    format!(", rules: {}", d.rules.join(", "))
                }
            ));
            self.settings_result(session, &ids, Some(&report)).await;
            return Err(report);
        }
        Ok(ids)
    }

    /// Records the outcome of the startup settings: applied, or not run.
    async fn settings_result(
        &self,
        session: &gatehouse_core::engine::Session,
        requests: &[EventId],
        failure: Option<&Report>,
    ) {
        let events: Vec<_> = requests
            .iter()
            .map(|id| {
                self.engine.result_event(
                    session,
                    ResultObserved {
                        request: Some(*id),
                        status: match failure {
                            None => ResultStatus::Ok,
                            Some(r) if r.code == "42501" => ResultStatus::Refused,
                            Some(_) => ResultStatus::Error,
                        },
                        code: failure.map(|r| r.code.to_owned()),
                        message: failure.map(|r| r.message.clone()),
                        ..ResultObserved::default()
                    },
                )
            })
            .collect();
        if let Err(error) = self.engine.record_results(&events).await {
            tracing::warn!(message = "Cannot record the outcome of startup settings.", %error);
        }
    }

    async fn cancel(&self, key: (i32, i32), peer: SocketAddr) {
        match self.cancels.get(key) {
            Some(t) => {
                // A statement held for approval is cancelled here: it is not upstream.
                t.cancelled.send_modify(|n| *n += 1);
                if let Err(error) = upstream::cancel(&t.upstream, t.tls.as_ref(), t.key).await {
                    tracing::warn!(message = "Cannot forward a cancel request.", %error);
                } else {
                    tracing::info!(message = "Cancel request forwarded.", client = %peer);
                }
            }
            None => {
                tracing::info!(message = "Cancel request with an unknown key ignored.", client = %peer)
            }
        }
    }
}

/// A session opened during login: closed in the log if the login does not complete
/// (refused, or dropped when the login times out).
struct OpenedSession {
    engine: Arc<Engine>,
    session: Option<Arc<gatehouse_core::engine::Session>>,
}

impl OpenedSession {
    async fn close(mut self, reason: &str) {
        if let Some(s) = self.session.take() {
            self.engine.close_session(&s, reason).await;
        }
    }

    fn handed_over(mut self) {
        self.session = None;
    }
}

impl Drop for OpenedSession {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let engine = self.engine.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { engine.close_session(&s, "login_timeout").await });
            }
        }
    }
}

/// The SQLSTATE of a server's refusal of a startup setting, as the gateway reports it.
fn setting_error_code(code: &str) -> &'static str {
    match code {
        "42704" => "42704", // unrecognized configuration parameter
        "42501" => "42501", // permission denied to set parameter
        "22P02" => "22P02",
        "55P02" => "55P02", // cannot be changed now
        _ => "22023",       // invalid parameter value
    }
}

fn io(e: std::io::Error) -> FrameError {
    tracing::debug!(message = "I/O error during login.", error = %e);
    FrameError::Malformed("connection", "closed during login")
}

async fn refuse(stream: &mut Stream, report: Report) {
    let mut b = BytesMut::new();
    report.encode(&mut b);
    let _ = stream.write_all(&b).await;
    let _ = stream.shutdown().await;
}

async fn read_startup(stream: &mut Stream, buf: &mut BytesMut) -> Result<BytesMut, FrameError> {
    loop {
        if let Some(n) = frame::peek_startup(buf, MAX_STARTUP)? {
            return Ok(buf.split_to(n));
        }
        if stream.read_buf(buf).await.map_err(io)? == 0 {
            return Err(FrameError::Malformed("StartupMessage", "connection closed"));
        }
    }
}

async fn read_password(stream: &mut Stream, buf: &mut BytesMut) -> Result<String, FrameError> {
    let f = loop {
        match frame::peek(buf, MAX_PASSWORD) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) => {
                refuse(
                    stream,
                    Report::fatal("08P01", format!("protocol violation: {e}")),
                )
                .await;
                return Err(e);
            }
        }
        if stream.read_buf(buf).await.map_err(io)? == 0 {
            return Err(FrameError::Malformed(
                "PasswordMessage",
                "connection closed",
            ));
        }
    };
    if f.tag != b'p' {
        let e = FrameError::UnexpectedTag(char::from(f.tag));
        refuse(
            stream,
            Report::fatal(
                "08P01",
                format!("protocol violation: expected a password message, got {e}"),
            ),
        )
        .await;
        return Err(e);
    }
    let msg = buf.split_to(f.wire_len);
    let mut r = Reader::new(f.body(&msg), "PasswordMessage");
    let token = r.str()?.to_owned();
    r.finish()?;
    Ok(token)
}
