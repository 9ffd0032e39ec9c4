//! The proxy's settings, taken from `gatehouse.toml` (`[listen] ssh`, `[ssh]`, and the
//! `[[target]]`s of protocol `ssh`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::config::Config;
use gatehouse_events::Protocol;
use russh::keys::{PrivateKey, PublicKey};

use crate::SetupError;

/// One SSH target Gatehouse logs in to.
pub struct SshTarget {
    /// Target name (tokens are bound to it).
    pub name: String,
    /// `host:port` to connect to.
    pub upstream: String,
    /// The host part of `upstream` exactly as written in the config: what
    /// `ssh.target.host` rules (and sequence captures) compare against.
    pub host: String,
    /// Other names of the host (`[[target]] aliases`), resolved with it when a
    /// session opens into `ssh.target.hosts`.
    pub aliases: Vec<String>,
    /// TCP port.
    pub port: u16,
    /// Login user on the target.
    pub user: String,
    /// The private key Gatehouse logs in with. Never logged.
    pub key: Arc<PrivateKey>,
    /// Pinned host key, when configured.
    pub host_key: Option<PublicKey>,
    /// The host runs `gatehouse-guard`: the directory its per-connection socket is
    /// bound in (ADR 0023); None when the host is not guarded.
    pub guard: Option<String>,
    /// Guarded sessions' ceiling on live processes and threads.
    pub guard_max_tasks: usize,
}

impl std::fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTarget")
            .field("name", &self.name)
            .field("upstream", &self.upstream)
            .field("user", &self.user)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// An agent public key accepted instead of a token.
#[derive(Debug, Clone)]
pub struct AgentKeyLogin {
    /// Identity events carry.
    pub identity: String,
    /// Target reached.
    pub target: String,
    /// The key.
    pub key: PublicKey,
    /// Session lifetime.
    pub session_ttl: Duration,
}

/// Proxy settings.
#[derive(Debug)]
pub struct SshProxyOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Gateway host key file (created on first run).
    pub host_key_file: PathBuf,
    /// Learned upstream host keys.
    pub known_hosts_file: PathBuf,
    /// Targets by name.
    pub targets: HashMap<String, Arc<SshTarget>>,
    /// Bytes recorded per channel and direction.
    pub record_bytes: u64,
    /// Handshake + authentication deadline.
    pub handshake_timeout: Duration,
    /// Agent keys.
    pub agent_keys: Vec<AgentKeyLogin>,
}

/// Splits `host:port`, `[v6]:port` or `host` (port 22).
pub fn split_host_port(upstream: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{upstream}` is not `host:port`");
    if let Some(rest) = upstream.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tail.is_empty() => 22,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match upstream.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((upstream.to_owned(), 22)),
    }
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    let mut parts = line.split_whitespace();
    let first = parts.next().ok_or("empty public key")?;
    let b64 = if first.starts_with("ssh-") || first.starts_with("ecdsa-") {
        parts.next().ok_or("public key without data")?
    } else {
        first
    };
    russh::keys::parse_public_key_base64(b64).map_err(|e| format!("bad public key: {e}"))
}

impl SshProxyOptions {
    /// Reads the settings from the configuration. Resolves every SSH target's key
    /// now, so a missing secret stops the gateway at start, not at first login.
    pub fn from_config(config: &Config) -> Result<Self, SetupError> {
        let listen = config
            .listen
            .ssh
            .ok_or_else(|| SetupError::Config("`[listen] ssh` is not set".into()))?;
        let mut targets = HashMap::new();
        for t in config
            .targets
            .iter()
            .filter(|t| t.protocol == Protocol::Ssh)
        {
            let err = |m: String| SetupError::Config(format!("target `{}`: {m}", t.name));
            let (host, port) = split_host_port(&t.upstream).map_err(err)?;
            let key_ref = t.key.as_ref().ok_or_else(|| err("no `key`".into()))?;
            let secret = key_ref.resolve().map_err(|e| err(e.to_string()))?;
            let text = zeroize::Zeroizing::new(format!("{}\n", secret.expose()));
            let key = russh::keys::decode_secret_key(&text, None)
                .map_err(|_| err("`key` is not an unencrypted OpenSSH private key".into()))?;
            let host_key = t
                .host_key
                .as_deref()
                .map(parse_public_key)
                .transpose()
                .map_err(|e| err(format!("host_key: {e}")))?;
            targets.insert(
                t.name.clone(),
                Arc::new(SshTarget {
                    name: t.name.clone(),
                    upstream: t.upstream.clone(),
                    host,
                    aliases: t.aliases.clone(),
                    port,
                    user: t.user.clone().unwrap_or_default(),
                    key: Arc::new(key),
                    host_key,
                    guard_max_tasks: t.guard_max_tasks.unwrap_or(1024),
                    guard: t.guard.then(|| {
                        t.guard_socket_dir
                            .clone()
                            .unwrap_or_else(|| "/tmp".to_owned())
                    }),
                }),
            );
        }
        let agent_keys = config
            .ssh
            .agent_keys
            .iter()
            .map(|k| {
                Ok(AgentKeyLogin {
                    identity: k.identity.clone(),
                    target: k.target.clone(),
                    key: parse_public_key(&k.public_key).map_err(|e| {
                        SetupError::Config(format!("ssh.agent_key `{}`: {e}", k.identity))
                    })?,
                    session_ttl: k.session_ttl,
                })
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        Ok(Self {
            listen,
            host_key_file: config
                .ssh
                .host_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("keys/ssh_host_ed25519")),
            known_hosts_file: config
                .ssh
                .known_hosts_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("ssh_known_hosts")),
            targets,
            record_bytes: config.ssh.record_bytes,
            handshake_timeout: config.ssh.handshake_timeout,
            agent_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("web-1:2222").unwrap(),
            ("web-1".into(), 2222)
        );
        assert_eq!(split_host_port("web-1").unwrap(), ("web-1".into(), 22));
        assert_eq!(split_host_port("[::1]:22").unwrap(), ("::1".into(), 22));
        assert!(split_host_port("a:b").is_err());
        assert!(split_host_port("::1:22").is_err());
    }
}
