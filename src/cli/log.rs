//! `gatehouse log ...`: inspect the local event log.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use gatehouse_core::log::{Durability, EventLog, LogConfig, LogReader, verify};
use gatehouse_events::{ocsf, synth};

/// Event log subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Walk the hash chain and checksums; report the first bad offset (exit 1).
    Verify(DirArgs),
    /// Print events as JSON lines.
    Tail(TailArgs),
    /// Append synthetic events (tests, benchmarks and demos).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Where the log lives.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Log directory (default: `<data dir>/log`).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Output encodings of `log tail`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TailFormat {
    /// The native event JSON (what the log stores).
    Native,
    /// OCSF 1.x JSON (what Kafka carries).
    Ocsf,
}

/// `log tail` options.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// First offset to print.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Keep waiting for new events.
    #[arg(long, short)]
    follow: bool,
    /// Output encoding.
    #[arg(long, value_enum, default_value_t = TailFormat::Native)]
    format: TailFormat,
    /// Prefix each line with the record offset and a tab.
    #[arg(long)]
    offsets: bool,
}

/// `log generate` options.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Number of events.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// `strict`, `batch` or `batch:MS`.
    #[arg(long, default_value = "batch")]
    durability: String,
    /// Print `OFFSET EVENT_ID` on stdout after each append returns.
    #[arg(long)]
    print_acks: bool,
    /// Pause this many microseconds between appends.
    #[arg(long, default_value_t = 0)]
    pace_us: u64,
}

fn log_dir(args: &DirArgs, data_dir: &std::path::Path) -> PathBuf {
    args.dir.clone().unwrap_or_else(|| data_dir.join("log"))
}

/// Runs a log subcommand.
pub fn run(cmd: LogCommand, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCommand::Verify(args) => {
            let dir = log_dir(&args, data_dir);
            let report =
                verify(&dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
            match report.problem {
                None => {
                    println!(
                        "ok: {} records in {} segments (offsets {}..{}), hash chain intact",
                        report.records,
                        report.segments,
                        report.first_offset.unwrap_or(0),
                        report.next_offset
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(p) => {
                    println!(
                        "bad record at offset {} (`{}` byte {}): {}",
                        p.offset,
                        p.segment.display(),
                        p.position,
                        p.reason
                    );
                    println!("{} records before it verified", report.records);
                    Ok(ExitCode::from(1))
                }
            }
        }
        LogCommand::Tail(args) => tail(args, data_dir),
        LogCommand::Generate(args) => generate(args, data_dir),
    }
}

fn tail(args: TailArgs, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let dir = log_dir(&args.dir, data_dir);
    let mut reader = LogReader::open(&dir, args.from);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        match reader.next_record()? {
            Some(rec) => {
                if args.offsets {
                    write!(out, "{}\t", rec.offset)?;
                }
                match args.format {
                    TailFormat::Native => out.write_all(&rec.payload)?,
                    TailFormat::Ocsf => {
                        serde_json::to_writer(&mut out, &ocsf::to_ocsf(&rec.event()?))?
                    }
                }
                out.write_all(b"\n")?;
            }
            None if args.follow => {
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            None => break,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn generate(args: GenerateArgs, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let durability = Durability::parse(&args.durability).with_context(|| {
        format!(
            "unknown durability `{}` (strict, batch, batch:MS)",
            args.durability
        )
    })?;
    let mut config = LogConfig::new(log_dir(&args.dir, data_dir));
    config.durability = durability;
    let log = EventLog::open(config)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let start = log.next_offset();
    for i in 0..args.count {
        let event = synth::sample(start + i, "gw-generate");
        let offset = log.append(&event)?;
        if args.print_acks {
            // Unbuffered: a line on stdout means the append had returned.
            writeln!(out, "{offset} {}", event.id)?;
        }
        if args.pace_us > 0 {
            std::thread::sleep(Duration::from_micros(args.pace_us));
        }
    }
    log.sync()?;
    Ok(ExitCode::SUCCESS)
}
