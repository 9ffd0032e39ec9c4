//! `gatehouse log ...`

use std::process::ExitCode;

use clap::Subcommand;

/// Event log subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Walk the hash chain and report the first bad offset.
    Verify,
}

/// Runs a log subcommand.
pub fn run(cmd: LogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCommand::Verify => Err(anyhow::anyhow!("not yet")),
    }
}
