//! `gatehouse rules ...`

use std::process::ExitCode;

use clap::Subcommand;

/// Rules subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files for errors.
    Check,
}

/// Runs a rules subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Check => Err(anyhow::anyhow!(
            "`rules check` is not available in this build yet"
        )),
    }
}
