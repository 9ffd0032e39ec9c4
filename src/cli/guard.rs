//! `gatehouse guard install`: the sshd configuration that puts an account's sessions
//! under `gatehouse-guard` (ADR 0023, `docs/guard.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// `guard` subcommands.
#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Print (or write) the sshd configuration for a guarded account.
    Install {
        /// The account agents log in as through the gateway (the target's `user`).
        #[arg(long)]
        user: String,
        /// Where `gatehouse-guard` is installed on the host.
        #[arg(long, default_value = "/usr/local/bin/gatehouse-guard")]
        guard_path: PathBuf,
        /// Write the snippet to this file (e.g.
        /// `/etc/ssh/sshd_config.d/gatehouse-guard.conf`) instead of printing it.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// The snippet for `user`.
pub fn snippet(user: &str, guard_path: &std::path::Path) -> String {
    format!(
        "# Gatehouse host guard (docs/guard.md): every session of `{user}` runs under\n\
         # gatehouse-guard, which asks the gateway before each exec and outbound connect\n\
         # of every process. Sessions that do not come through the gateway start nothing.\n\
         # The host needs Linux 5.6 or later (seccomp user notification, pidfd_getfd).\n\
         # Keep `PermitUserEnvironment no` (the default): ~/.ssh/environment must not\n\
         # be able to name another socket for the guard.\n\
         Match User {user}\n\
         \tForceCommand {guard}\n\
         \tAcceptEnv GATEHOUSE_GUARD_SOCKET GATEHOUSE_GUARD_TOKEN\n\
         \tAllowStreamLocalForwarding yes\n\
         \tStreamLocalBindUnlink yes\n\
         Match all\n",
        guard = guard_path.display()
    )
}

/// Runs a `guard` subcommand.
pub fn run(cmd: GuardCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GuardCommand::Install {
            user,
            guard_path,
            write,
        } => {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c == '"') {
                anyhow::bail!("`--user {user}` is not an account name");
            }
            if !guard_path.is_absolute() {
                anyhow::bail!(
                    "`--guard-path {}` must be absolute (sshd runs it from the account's home)",
                    guard_path.display()
                );
            }
            let text = snippet(&user, &guard_path);
            match write {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
                    eprintln!(
                        "wrote {}; check it with `sshd -t` and reload sshd",
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
