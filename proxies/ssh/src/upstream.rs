//! The gateway's own SSH connection to a target: host key verified (pinned or
//! learned, never silently changed), public-key login with the key Gatehouse holds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::keys::{HostKeyCheck, KnownHosts};
use crate::options::SshTarget;

/// A live upstream connection.
pub type Upstream = client::Handle<UpstreamHandler>;

/// Why the upstream could not be reached. Shown to the client; never contains keys.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP / SSH transport failure.
    #[error("cannot connect to `{upstream}`: {reason}")]
    Connect {
        /// Address.
        upstream: String,
        /// Reason.
        reason: String,
    },
    /// The host key differs from the pinned or learned one.
    #[error(
        "the host key of `{upstream}` changed; refusing to connect (expected {expected}, got {presented})"
    )]
    HostKeyChanged {
        /// Address.
        upstream: String,
        /// Expected key line.
        expected: String,
        /// Presented key line.
        presented: String,
    },
    /// The target refused Gatehouse's key.
    #[error("`{0}` refused the gateway's key for its user")]
    AuthRefused(String),
}

/// Checks the server key during the upstream handshake, and takes the guard's
/// connections when the target is guarded.
pub struct UpstreamHandler {
    target: Arc<SshTarget>,
    known: Arc<KnownHosts>,
    outcome: Arc<Mutex<Option<(HostKeyCheck, PublicKey)>>>,
    guard: Option<Guard>,
}

/// What a guarded connection's handler needs to serve the guard's stream.
#[derive(Clone)]
pub struct Guard {
    /// The connection's context (weak: the context holds the connection).
    pub ctx: std::sync::Weak<crate::ctx::Ctx>,
    /// The socket and tokens.
    pub hub: Arc<crate::guard::GuardHub>,
}

impl client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            // Host certificates are not trusted without a configured CA.
            return Ok(false);
        };
        let check = self
            .known
            .check(&self.target.name, self.target.host_key.as_ref(), key);
        let ok = !matches!(check, HostKeyCheck::Changed { .. });
        *self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((check, key.clone()));
        Ok(ok)
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        channel: russh::Channel<client::Msg>,
        socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Only the guard's own socket is forwarded; anything else is refused.
        let Some(g) = self.guard.as_ref().filter(|g| g.hub.path == socket_path) else {
            drop(reply);
            return Ok(());
        };
        let Some(ctx) = g.ctx.upgrade() else {
            drop(reply);
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(crate::guard::serve(ctx, g.hub.clone(), channel));
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // The gateway never asks for remote TCP forwards.
        drop(reply);
        Ok(())
    }
}

/// The gateway's algorithm preferences as an SSH client. The client's cipher order
/// decides, and russh puts ChaCha20-Poly1305 first; with AES in hardware, AES-GCM
/// costs a fraction of it on both ends (the gateway decrypts every byte the target
/// sends, and OpenSSH's AES-GCM is the target's cheapest cipher too), so it goes
/// first there. Without AES hardware ChaCha20 is faster and stays first.
fn upstream_preferred() -> russh::Preferred {
    const AES_FIRST: &[russh::cipher::Name] = &[
        russh::cipher::AES_256_GCM,
        russh::cipher::AES_128_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_192_CTR,
        russh::cipher::AES_128_CTR,
    ];
    let mut preferred = russh::Preferred::DEFAULT;
    if aes_in_hardware() {
        preferred.cipher = std::borrow::Cow::Borrowed(AES_FIRST);
    }
    preferred
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Connects and logs in. Returns the connection and the host key check outcome.
pub async fn connect(
    target: &Arc<SshTarget>,
    known: &Arc<KnownHosts>,
    timeout: Duration,
    guard: Option<Guard>,
) -> Result<(Upstream, HostKeyCheck, PublicKey), UpstreamError> {
    let outcome = Arc::new(Mutex::new(None));
    let guard_path = guard.as_ref().map(|g| g.hub.path.clone());
    let handler = UpstreamHandler {
        target: target.clone(),
        known: known.clone(),
        outcome: outcome.clone(),
        guard,
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        channel_buffer_size: 64,
        nodelay: true,
        preferred: upstream_preferred(),
        ..client::Config::default()
    });
    let connect_err = |reason: String| UpstreamError::Connect {
        upstream: target.upstream.clone(),
        reason,
    };
    let taken = || {
        outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    let addr = (target.host.as_str(), target.port);
    let handle = match tokio::time::timeout(timeout, client::connect(config, addr, handler)).await {
        Err(_) => return Err(connect_err("timed out".into())),
        Ok(Err(e)) => {
            if let Some((HostKeyCheck::Changed { expected }, presented)) = taken() {
                return Err(UpstreamError::HostKeyChanged {
                    upstream: target.upstream.clone(),
                    expected,
                    presented: crate::keys::openssh_line(&presented),
                });
            }
            return Err(connect_err(e.to_string()));
        }
        Ok(Ok(h)) => h,
    };
    let (check, key) = taken().ok_or_else(|| connect_err("no host key was presented".into()))?;
    let mut handle = handle;
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| connect_err(e.to_string()))?
        .flatten();
    let auth = tokio::time::timeout(
        timeout,
        handle.authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(target.key.clone(), hash),
        ),
    )
    .await
    .map_err(|_| connect_err("login timed out".into()))?
    .map_err(|e| connect_err(e.to_string()))?;
    if !auth.success() {
        return Err(UpstreamError::AuthRefused(target.upstream.clone()));
    }
    if let Some(path) = guard_path {
        // The guard asks its questions on this socket, forwarded back here.
        tokio::time::timeout(timeout, handle.streamlocal_forward(path.clone()))
            .await
            .map_err(|_| connect_err("the guard's socket forward timed out".into()))?
            .map_err(|e| {
                connect_err(format!(
                    "the target refused the guard's socket forward at `{path}` ({e}): \
                     sshd needs `AllowStreamLocalForwarding yes` (see `gatehouse guard install`)"
                ))
            })?;
    }
    if check == HostKeyCheck::Learned
        && let Err(e) = known.learn(&target.name, &target.upstream, &key)
    {
        tracing::warn!(message = "Cannot persist a learned SSH host key.", target = %target.name, error = %e);
    }
    Ok((handle, check, key))
}
