//! The Gatehouse SSH proxy.
//!
//! Agents connect with stock OpenSSH clients (`ssh`, `scp`, `sftp`, `rsync -e ssh`)
//! and log in with their Gatehouse token as the password (login `agent` or
//! `agent+target`). The proxy terminates SSH with `russh`, opens its own connection
//! to the target with the key Gatehouse holds, and relays channel by channel: every
//! exec, shell line, SFTP operation and port forward is judged by the engine and
//! logged before it is forwarded. See `docs/ssh.md`.

mod channel;
mod ctx;
mod forward;
pub mod guard;
pub mod keys;
pub mod line_editor;
pub mod options;
mod record;
pub mod scp;
mod server;
pub mod sftp;
pub mod shell;
mod upstream;

pub use options::{SshProxyOptions, SshTarget};
pub use server::SshProxy;

/// Exit status of a command the gateway refused (policy block, denied or expired
/// approval).
pub const EXIT_REFUSED: u32 = 126;
/// Exit status when the gateway cannot run the command (upstream unreachable or lost
/// mid-command, log unavailable), always with a `gatehouse: ...` line on stderr.
pub const EXIT_GATEWAY_ERROR: u32 = 255;

/// The proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A configuration problem.
    #[error("ssh proxy: {0}")]
    Config(String),
    /// The gateway host key or the known-hosts file.
    #[error("ssh host key: {0}")]
    HostKey(String),
    /// Binding the listener.
    #[error("ssh proxy: cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Error.
        source: std::io::Error,
    },
}
