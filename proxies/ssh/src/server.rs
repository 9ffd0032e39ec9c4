//! The client-facing SSH server: accept loop, handshake deadline, authentication
//! (Gatehouse token as password, or a configured agent key), the login decision,
//! the upstream connection, and dispatch of channels.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_core::engine::{Engine, EngineError, Session, SessionInfo};
use gatehouse_core::identity::Principal;
use gatehouse_events::payload::{
    AlertRaised, Effect, ResultObserved, ResultStatus, Severity, SshRequest, SshRequestKind,
};
use gatehouse_events::{Identity, Protocol};
use russh::keys::PublicKey;
use russh::server::{self, Auth, Msg, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ctx::{Ctx, UpstreamState, Verdict};
use crate::keys::{HostKeyCheck, KnownHosts};
use crate::{SetupError, SshProxyOptions};

/// What every connection shares.
struct Shared {
    engine: Arc<Engine>,
    /// Files written per identity and target, across connections (see `Ctx::written`).
    written: crate::ctx::Written,
    options: SshProxyOptions,
    known: Arc<KnownHosts>,
    config: Arc<server::Config>,
}

/// A bound SSH proxy.
pub struct SshProxy {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl SshProxy {
    /// Loads (or creates) the host key and binds the listener.
    pub async fn bind(engine: Arc<Engine>, options: SshProxyOptions) -> Result<Self, SetupError> {
        let host_key = crate::keys::load_or_create_host_key(&options.host_key_file)?;
        let known = Arc::new(KnownHosts::load(&options.known_hosts_file)?);
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::Password);
        if !options.agent_keys.is_empty() {
            methods.push(MethodKind::PublicKey);
        }
        let config = Arc::new(server::Config {
            server_id: SshId::Standard("SSH-2.0-Gatehouse".into()),
            methods,
            auth_rejection_time: Duration::from_millis(500),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            window_size: 2 * 1024 * 1024,
            maximum_packet_size: 32 * 1024,
            channel_buffer_size: 32,
            max_auth_attempts: 6,
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            nodelay: true,
            ..server::Config::default()
        });
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| SetupError::Bind {
                    addr: options.listen,
                    source,
                })?;
        Ok(Self {
            shared: Arc::new(Shared {
                written: crate::ctx::Written::default(),
                engine,
                options,
                known,
                config,
            }),
            listener,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The gateway host public key line (`ssh-ed25519 AAAA...`), for clients to pin.
    pub fn host_public_key(&self) -> String {
        self.shared
            .config
            .keys
            .first()
            .map(|k| crate::keys::openssh_line(k.public_key()))
            .unwrap_or_default()
    }

    /// Accepts connections until `shutdown` turns true. Each connection runs in its
    /// own task: a stalled or malformed one affects no other.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; } else { continue; }
                }
            };
            match accepted {
                Ok((socket, peer)) => {
                    let shared = self.shared.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(connection(shared, socket, peer, shutdown));
                }
                Err(error) => {
                    tracing::warn!(message = "SSH accept failed.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Slot through which the handler hands the authenticated context to the
/// connection task (which closes the session at the end).
type CtxSlot = Arc<Mutex<Option<Arc<Ctx>>>>;

fn slot_get(slot: &CtxSlot) -> Option<Arc<Ctx>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Why an authenticated login cannot have a session (the event log is failed): the
/// login is accepted so that the client can be told, on its channel, instead of a
/// bare `Permission denied` that reads like a bad token. Nothing is forwarded.
type RefusalSlot = Arc<Mutex<Option<String>>>;

fn refusal_get(slot: &RefusalSlot) -> Option<String> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// What a client whose session cannot be opened is told.
fn session_refusal(error: &EngineError) -> String {
    match error {
        EngineError::Log(_) => "gatehouse: the audit log is unavailable; refusing to open a session (nothing was run; try again once the gateway's event log recovers)".into(),
        EngineError::Policy(m) => format!("gatehouse: refusing to open a session: {m}"),
        EngineError::Cluster(m) => {
            format!("gatehouse: refusing to open a session: the cluster cannot be reached: {m}")
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    // A second handle on the socket: shutting it down ends russh's session task
    // (which a dropped `RunningSession` would not), e.g. at the handshake deadline.
    let (socket, killer) = match socket.into_std().and_then(|s| {
        let k = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, k))
    }) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(message = "Cannot set up an SSH connection.", %peer, %error);
            return;
        }
    };
    let slot: CtxSlot = Arc::new(Mutex::new(None));
    let refusal: RefusalSlot = Arc::new(Mutex::new(None));
    let handler = Conn {
        shared: shared.clone(),
        peer,
        slot: slot.clone(),
        refusal: refusal.clone(),
    };
    let deadline = tokio::time::Instant::now() + shared.options.handshake_timeout;
    let running = match tokio::time::timeout_at(
        deadline,
        server::run_stream(shared.config.clone(), socket, handler),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(error)) => {
            tracing::debug!(message = "SSH connection setup failed.", %peer, %error);
            return;
        }
        Err(_) => {
            tracing::info!(message = "SSH client did not send its version in time.", %peer);
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let mut reason = "client_closed";
    let mut finished = false;
    // The handshake and authentication must finish before the deadline.
    tokio::select! {
        r = &mut running => {
            finished = true;
            if let Err(error) = r { tracing::debug!(message = "SSH session ended.", %peer, %error); }
        }
        () = tokio::time::sleep_until(deadline) => {}
        () = wait_for_ctx(&slot) => {}
    };
    let Some(ctx) = slot_get(&slot) else {
        if !finished {
            // A refused login has had its deadline to read the refusal.
            let why = refusal_get(&refusal).unwrap_or_else(|| {
                tracing::info!(message = "SSH handshake timed out.", %peer);
                "authentication timeout".into()
            });
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, why, String::new())
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut running).await;
        }
        let _ = killer.shutdown(std::net::Shutdown::Both);
        return;
    };
    if !finished {
        tokio::select! {
            r = &mut running => {
                if let Err(error) = r {
                    tracing::debug!(message = "SSH session ended with an error.", %peer, %error);
                    reason = "protocol_error";
                }
            }
            closed = ctx.session.closed() => {
                reason = "closed_by_gateway";
                let _ = handle.disconnect(russh::Disconnect::ByApplication, format!("gatehouse: {closed}"), String::new()).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut running).await;
            }
            () = async { let _ = shutdown.wait_for(|s| *s).await.map(|_| ()); } => {
                reason = "gateway_shutdown";
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "gatehouse is shutting down".into(), String::new()).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut running).await;
            }
        }
    }
    if let UpstreamState::Ready(up) = &*ctx.upstream.borrow() {
        let up = up.clone();
        tokio::spawn(async move {
            let _ = up
                .disconnect(russh::Disconnect::ByApplication, "", "")
                .await;
        });
    }
    let _ = killer.shutdown(std::net::Shutdown::Both);
    ctx.engine.close_session(&ctx.session, reason).await;
}

async fn wait_for_ctx(slot: &CtxSlot) {
    while slot_get(slot).is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The russh handler of one client connection.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    slot: CtxSlot,
    refusal: RefusalSlot,
}

fn requested_target(user: &str) -> Option<&str> {
    user.split_once('+')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

impl Conn {
    fn ctx(&self) -> Option<Arc<Ctx>> {
        slot_get(&self.slot)
    }

    /// Whether this connection already logged in (with a session or refused one).
    fn logged_in(&self) -> bool {
        self.ctx().is_some() || refusal_get(&self.refusal).is_some()
    }

    /// Opens the engine session, decides the login (`session_open`), and starts
    /// connecting upstream. Returns whether the SSH login is accepted.
    async fn login(&mut self, principal: Principal, user: &str, method: &str) -> bool {
        let written = self
            .shared
            .written
            .of(&principal.identity.name, &principal.target);
        let engine = self.shared.engine.clone();
        let Some(target) = self.shared.options.targets.get(&principal.target).cloned() else {
            tracing::warn!(message = "Token names a target the SSH proxy has no key for.", target = %principal.target);
            return false;
        };
        let info = SessionInfo {
            client_addr: Some(self.peer),
            login: Some(user.to_owned()),
            auth_method: Some(method.to_owned()),
            upstream_host: Some(target.host.clone()),
            client_application: None,
        };
        let guard = match target.guard.as_deref().map(crate::guard::GuardHub::new) {
            None => None,
            Some(Ok(hub)) => Some(Arc::new(hub)),
            Some(Err(e)) => {
                *self
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(format!("gatehouse: {e}"));
                return true;
            }
        };
        let session = match engine.open_session(principal, info).await {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(message = "Cannot open a session; the client is told on its channel.", peer = %self.peer, %error);
                *self
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(session_refusal(&error));
                return true;
            }
        };
        let (tx, rx) = watch::channel(UpstreamState::Connecting);
        let hosts = engine
            .hosts()
            .target_keys(&target.host, &target.aliases)
            .await;
        let ctx = Arc::new(Ctx {
            engine: engine.clone(),
            session: session.clone(),
            target: target.clone(),
            hosts,
            upstream: rx,
            record_bytes: self.shared.options.record_bytes,
            written,
            guard,
        });
        let decided = engine
            .decide(
                &session,
                format!("ssh {}@{}", target.user, target.host),
                ctx.request(SshRequest {
                    kind: SshRequestKind::SessionOpen,
                    ..SshRequest::default()
                }),
            )
            .await;
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ctx.clone());
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let held_tx = tx.clone();
            let verdict = ctx
                .enforce(decided, |m| {
                    let _ = held_tx.send(UpstreamState::Held(m));
                    async {}
                })
                .await;
            let decision = match verdict {
                Verdict::Run(d) => *d,
                Verdict::Refused(m, code) => {
                    let _ = tx.send(UpstreamState::Failed(m, code));
                    return;
                }
            };
            let timeout = shared.options.handshake_timeout;
            let guard = ctx.guard.clone().map(|hub| crate::upstream::Guard {
                ctx: Arc::downgrade(&ctx),
                hub,
            });
            match crate::upstream::connect(&target, &shared.known, timeout, guard).await {
                Ok((up, check, key)) => {
                    if check == HostKeyCheck::Learned {
                        host_key_alert(
                            &ctx,
                            &session,
                            "ssh_host_key_learned",
                            Severity::Low,
                            format!(
                                "learned the host key of `{}` ({}) on first use: {}",
                                target.name,
                                target.upstream,
                                crate::keys::openssh_line(&key)
                            ),
                        )
                        .await;
                    }
                    let _ = ctx
                        .engine
                        .record_result(
                            &session,
                            ResultObserved {
                                request: Some(decision.request),
                                status: ResultStatus::Ok,
                                ..ResultObserved::default()
                            },
                        )
                        .await;
                    let _ = tx.send(UpstreamState::Ready(Arc::new(up)));
                }
                Err(e) => {
                    if let crate::upstream::UpstreamError::HostKeyChanged { .. } = &e {
                        host_key_alert(
                            &ctx,
                            &session,
                            "ssh_host_key_changed",
                            Severity::High,
                            e.to_string(),
                        )
                        .await;
                    }
                    tracing::warn!(message = "Cannot reach the SSH target.", target = %target.name, error = %e);
                    let _ = ctx
                        .engine
                        .record_result(
                            &session,
                            ResultObserved {
                                request: Some(decision.request),
                                status: ResultStatus::Error,
                                message: Some(e.to_string()),
                                ..ResultObserved::default()
                            },
                        )
                        .await;
                    let _ = tx.send(UpstreamState::Failed(
                        format!("gatehouse: {e}"),
                        crate::EXIT_GATEWAY_ERROR,
                    ));
                }
            }
        });
        true
    }
}

async fn host_key_alert(
    ctx: &Ctx,
    session: &Session,
    rule: &str,
    severity: Severity,
    message: String,
) {
    let event = session
        .event(
            ctx.engine.gateway_id(),
            AlertRaised {
                rule: rule.into(),
                message,
                severity,
                tags: vec!["gatehouse.ssh_host_key".into()],
                effect: (severity == Severity::High).then_some(Effect::Block),
                ..AlertRaised::default()
            },
        )
        .build();
    if let Err(e) = ctx.engine.record(event).await {
        tracing::error!(message = "Cannot record a host key event.", error = %e);
    }
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        let principal = match self
            .shared
            .engine
            .authenticate(
                password,
                Protocol::Ssh,
                requested_target(user),
                Some(self.peer),
                Some(user),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(message = "SSH login refused.", peer = %self.peer, %user, reason = e.code());
                return Ok(Auth::reject());
            }
        };
        Ok(if self.login(principal, user, "password").await {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.agent_key(user, offer.public_key).is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.logged_in() {
            return Ok(Auth::reject());
        }
        let Some(agent) = self.agent_key(user, key.public_key).cloned() else {
            return Ok(Auth::reject());
        };
        let principal = Principal {
            identity: Identity {
                name: gatehouse_core::identity::normalize(&agent.identity).into_owned(),
                on_behalf_of: None,
                role: None,
                credential_id: None,
            },
            target: agent.target.clone(),
            protocol: Protocol::Ssh,
            expires_at: chrono_now_plus(agent.session_ttl),
            method: "ssh-publickey",
        };
        Ok(if self.login(principal, user, "publickey").await {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        let Some(ctx) = self.ctx() else {
            if let Some(message) = refusal_get(&self.refusal) {
                reply.accept().await;
                tokio::spawn(crate::channel::refuse_session(channel, message));
            }
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(crate::channel::run(ctx, channel));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        let Some(ctx) = self.ctx() else {
            return Ok(());
        };
        tokio::spawn(crate::forward::run(
            ctx,
            channel,
            reply,
            crate::forward::Destination {
                host: host_to_connect.to_owned(),
                port: port_to_connect,
                originator: originator_address.to_owned(),
                originator_port,
            },
        ));
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut server::Session,
    ) -> Result<bool, Self::Error> {
        if let Some(ctx) = self.ctx() {
            let what = format!("tcpip-forward {address}:{port}");
            tokio::spawn(async move { crate::channel::refuse_forwarding(&ctx, 0, what).await });
        }
        Ok(false)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        // Judged with the command that follows; dropped if not allowed.
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        // Refusals are reported as stderr text and exit status 126, so the request
        // itself succeeds.
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}

impl Conn {
    fn agent_key(&self, user: &str, key: &PublicKey) -> Option<&crate::options::AgentKeyLogin> {
        let requested = requested_target(user);
        self.shared
            .options
            .agent_keys
            .iter()
            .find(|a| a.key.key_data() == key.key_data() && requested.is_none_or(|t| t == a.target))
    }
}

fn chrono_now_plus(d: Duration) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}
