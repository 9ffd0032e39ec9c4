//! `gatehouse replay SESSION`: renders a recorded session from the event log.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use gatehouse_core::log::LogReader;
use gatehouse_core::replay::{ReplayFormat, render, session_events};

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
}

/// Runs `replay`.
pub fn run(args: ReplayArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| data_dir.join("log"));
    let mut reader = LogReader::open(&dir, 0);
    let mut events = Vec::new();
    while let Some(rec) = reader.next_record()? {
        let event = rec.event()?;
        if event.session_id.as_deref() == Some(args.session.as_str()) {
            events.push(event);
        }
    }
    if events.is_empty() {
        anyhow::bail!(
            "no events for session `{}` in `{}`",
            args.session,
            dir.display()
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
