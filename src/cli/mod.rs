//! Command-line wiring: argument parsing and dispatch to the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod audit;
mod guard;
mod log;
mod notify;
mod proxies;
mod remote;
mod replay;
mod rules;
mod serve;
mod ship;
mod signals;
mod store;
mod tracing_setup;

/// Gatehouse: an access gateway for autonomous agents.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    /// Operational log format (these are not audit events).
    #[arg(long, global = true, value_enum, default_value_t = tracing_setup::LogFormat::Human, env = "GATEHOUSE_LOG_FORMAT")]
    log_format: tracing_setup::LogFormat,

    /// Data directory: event log, shipper cursors, audit files, keys (default
    /// `.gatehouse`; for `serve`, given here it overrides `data_dir` of the config file).
    #[arg(long, global = true, env = "GATEHOUSE_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: proxies, shippers, admin API.
    Serve(serve::ServeArgs),
    /// Check, test, format and explain `.rules` files.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Issue and revoke agent credentials (through the admin API).
    Token {
        #[command(subcommand)]
        cmd: remote::TokenCommand,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// List, approve and deny held commands (through the admin API).
    Approvals {
        #[command(subcommand)]
        cmd: remote::ApprovalsCommand,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// A cluster of gateways (docs/cluster.md): status, through the admin API.
    Cluster {
        #[command(subcommand)]
        cmd: remote::ClusterCommand,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// SQL over the Parquet audit, and chain hunting.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Replay a recorded session (SSH: asciicast v2, text or JSON).
    Replay(replay::ReplayArgs),
    /// Ship the event log to Parquet and/or Kafka (standalone; `serve` does it in-process).
    Ship(ship::ShipArgs),
    /// Inspect the local event log.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Guarded hosts: the sshd configuration for `gatehouse-guard` (docs/guard.md).
    #[command(subcommand)]
    Guard(guard::GuardCommand),
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_setup::init(cli.log_format);
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(".gatehouse"));
    let result = match cli.command {
        Command::Rules(cmd) => rules::run(cmd),
        Command::Log(cmd) => log::run(cmd, &data_dir),
        Command::Ship(args) => ship::run(args, &data_dir),
        Command::Audit(cmd) => audit::run(cmd, &data_dir),
        Command::Serve(args) => serve::run(args, cli.data_dir.as_deref()),
        Command::Token { cmd, remote } => remote::token(cmd, &remote),
        Command::Approvals { cmd, remote } => remote::approvals(cmd, &remote),
        Command::Cluster { cmd, remote } => remote::cluster(cmd, &remote),
        Command::Replay(args) => replay::run(args, &data_dir),
        Command::Guard(cmd) => guard::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
