//! `gatehouse-guard`: runs an agent's SSH session on a target host under a seccomp
//! filter, so that every `execve`/`execveat` and outbound `connect` of every process
//! in the session waits until the Gatehouse gateway has judged it (ADR 0023).
//!
//! sshd starts it as the agent account's `ForceCommand`. The gateway, which holds
//! the session's SSH connection, has asked sshd to forward a Unix socket back to it
//! and passed its path and a one-session token in the environment; the guard asks
//! its questions there. Without them, or if the gateway stops answering, nothing
//! runs.

pub mod filter;
pub mod inspect;
pub mod protocol;
pub mod supervise;
pub mod sys;

/// Environment variable naming the socket the gateway listens on.
pub const SOCKET_ENV: &str = "GATEHOUSE_GUARD_SOCKET";
/// Environment variable carrying the session's token.
pub const TOKEN_ENV: &str = "GATEHOUSE_GUARD_TOKEN";

/// Variables the session's processes never see: the guard's own, and the command
/// sshd would not have set without the `ForceCommand`.
const GUARD_ONLY_ENV: &[&str] = &[SOCKET_ENV, TOKEN_ENV, "SSH_ORIGINAL_COMMAND"];

/// Where distributions install OpenSSH's stand-alone SFTP server.
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
];

/// Why the guard could not start the session.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs the session sshd asked for (from `SSH_ORIGINAL_COMMAND`, or a login shell),
/// returning its exit code.
pub fn main_from_env() -> Result<i32, StartError> {
    let socket = std::env::var(SOCKET_ENV).map_err(|_| {
        StartError(format!(
            "this account is guarded: sessions must come through the Gatehouse gateway \
             ({SOCKET_ENV} is not set: the login did not come through the gateway, or \
             sshd lacks `AcceptEnv GATEHOUSE_GUARD_*`; see `gatehouse guard install`)"
        ))
    })?;
    let token = std::env::var(TOKEN_ENV).unwrap_or_default();
    let gateway = protocol::Gateway::connect(&socket, &token).map_err(|e| {
        StartError(format!(
            "cannot reach the Gatehouse gateway at {socket}: {e}"
        ))
    })?;
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| s.starts_with('/'))
        .or_else(sys::login_shell)
        .unwrap_or_else(|| "/bin/sh".to_owned());
    // sshd runs a ForceCommand for subsystem requests too, with the subsystem's
    // command as the original command: `internal-sftp` is sshd's own, so the guard
    // runs the stand-alone server in its place.
    let original = std::env::var("SSH_ORIGINAL_COMMAND");
    if original.as_deref() == Ok("internal-sftp") {
        let server = SFTP_SERVERS
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or_else(|| StartError("no sftp-server on this host".to_owned()))?;
        return supervise::run(
            gateway,
            supervise::Session {
                program: (*server).to_owned(),
                argv: vec![(*server).to_owned()],
                env_remove: GUARD_ONLY_ENV.iter().map(|k| (*k).to_owned()).collect(),
                guard_socket: Some(socket),
            },
        )
        .map_err(|e| StartError(e.to_string()));
    }
    let argv = match original {
        Ok(command) => vec![shell.clone(), "-c".to_owned(), command],
        Err(_) => {
            let base = shell.rsplit('/').next().unwrap_or("sh");
            vec![format!("-{base}")]
        }
    };
    let session = supervise::Session {
        program: shell,
        argv,
        env_remove: GUARD_ONLY_ENV.iter().map(|k| (*k).to_owned()).collect(),
        guard_socket: Some(socket),
    };
    supervise::run(gateway, session).map_err(|e| StartError(e.to_string()))
}
