//! `gatehouse replay SESSION`: renders a recorded session from the event log.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use gatehouse_core::log::LogReader;
use gatehouse_core::replay::{ReplayFormat, render, session_events};
use gatehouse_events::Event;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// asciicast v2, for `asciinema play`.
    Asciicast,
    /// Commands, decisions and outputs as text.
    Text,
    /// The session's events as JSON lines.
    Json,
}

/// `replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session id (as in `session_opened` events, e.g. `ss-1a2b3c4d-0`).
    session: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Log directory (default: `<data dir>/log`).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Read the session from the Parquet audit instead of the log: a directory, or a
    /// cluster's shared audit `s3://BUCKET/PREFIX`, which holds every gateway's
    /// sessions (also those of a gateway that is gone).
    #[arg(long, conflicts_with = "dir")]
    audit: Option<std::path::PathBuf>,
}

/// Runs `replay`.
pub fn run(args: ReplayArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let (events, source) = match &args.audit {
        Some(audit) => (from_audit(audit, &args.session)?, audit.clone()),
        None => {
            let dir = args.dir.clone().unwrap_or_else(|| data_dir.join("log"));
            (from_log(&dir, &args.session)?, dir)
        }
    };
    if events.is_empty() {
        anyhow::bail!(
            "no events for session `{}` in `{}`",
            args.session,
            source.display()
        );
    }
    let format = match args.format {
        Format::Asciicast => ReplayFormat::Asciicast,
        Format::Text => ReplayFormat::Text,
        Format::Json => ReplayFormat::Json,
    };
    let out = render(&session_events(&events, &args.session), format);
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn from_log(dir: &Path, session: &str) -> anyhow::Result<Vec<Event>> {
    let mut reader = LogReader::open(dir, 0);
    let mut events = Vec::new();
    while let Some(rec) = reader.next_record()? {
        let event = rec.event()?;
        if event.session_id.as_deref() == Some(session) {
            events.push(event);
        }
    }
    Ok(events)
}

/// The session's events from the audit, deduplicated (a shipper may have delivered a
/// record twice), in time order.
fn from_audit(location: &Path, session: &str) -> anyhow::Result<Vec<Event>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let audit = super::store::audit(location).await?;
        let batches = audit
            .sql(&format!(
                "SELECT * FROM events_dedup WHERE session_id = '{}' ORDER BY time, event_id",
                session.replace('\'', "''")
            ))
            .await?;
        let mut events = Vec::new();
        for batch in &batches {
            events.extend(gatehouse_events::arrow::from_record_batch(batch)?);
        }
        Ok(events)
    })
}
