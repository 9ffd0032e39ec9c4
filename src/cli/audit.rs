//! `gatehouse audit ...`: SQL over the Parquet audit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use gatehouse_analytics::{Audit, OutputFormat};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Run SQL over the audit tables (`events`, ...).
    Sql(SqlArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// `audit sql` options.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query.
    query: String,
    /// Audit directory (default: `<data dir>/audit`).
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Runs an audit subcommand.
pub fn run(cmd: AuditCommand, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cmd {
        AuditCommand::Sql(args) => runtime.block_on(async {
            let dir = args
                .audit_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("audit"));
            let audit = Audit::open(&dir).await?;
            let batches = audit.sql(&args.query).await?;
            let format = match args.format {
                Format::Table => OutputFormat::Table,
                Format::Csv => OutputFormat::Csv,
                Format::Json => OutputFormat::Json,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            gatehouse_analytics::write_batches(&mut out, &batches, format)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}
