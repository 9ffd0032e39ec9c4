//! `gatehouse audit ...`: SQL over the Parquet audit, chain hunting, backfill.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use gatehouse_analytics::chains::ChainQuery;
use gatehouse_analytics::{Audit, OutputFormat};
use gatehouse_core::policy::{Policy, PolicyOptions, backfill::backfill};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Run SQL over the audit tables and views; an interactive shell without a query.
    Sql(SqlArgs),
    /// Hunt identity-keyed Postgres -> SSH -> Kubernetes chains (and two-step variants).
    Chains(ChainsArgs),
    /// Run the sequence rules of `.rules` files over the recorded history.
    Backfill(BackfillArgs),
    /// Write a generated history (benign traffic with planted chains) as Parquet.
    #[command(hide = true)]
    Generate(GenerateArgs),
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
    /// A Parquet file (needs `--output`).
    Parquet,
}

/// Where the audit is and how to print.
#[derive(Debug, Args)]
pub struct Output {
    /// Audit directory (default: `<data dir>/audit`), or a cluster's shared audit
    /// `s3://BUCKET/PREFIX` (credentials and endpoint from the `AWS_*` variables).
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print how long the query ran (from planning to the last row, without
    /// start-up and printing) to stderr.
    #[arg(long)]
    timing: bool,
}

impl Output {
    fn timed(&self, started: std::time::Instant, rows: &[RecordBatch]) {
        if self.timing {
            let n: usize = rows.iter().map(RecordBatch::num_rows).sum();
            eprintln!("{n} row(s) in {:.3} s", started.elapsed().as_secs_f64());
        }
    }
}

/// `audit sql` options.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query (omit for an interactive shell reading statements ending in `;`).
    query: Option<String>,
    #[command(flatten)]
    out: Output,
}

/// `audit chains` options.
#[derive(Debug, Args)]
pub struct ChainsArgs {
    /// Longest time from the first to the last step.
    #[arg(long, default_value = "30m")]
    within: String,
    /// Only chains starting at or after this time (RFC 3339 or `YYYY-MM-DD`).
    #[arg(long)]
    since: Option<String>,
    /// Only complete three-step chains.
    #[arg(long)]
    full_only: bool,
    /// Print the equivalent SQL instead of hunting (to paste into `datafusion-cli`).
    #[arg(long)]
    print_sql: bool,
    /// Run that SQL through DataFusion instead of the built-in sweep (same rows,
    /// slower; for comparison).
    #[arg(long, conflicts_with = "print_sql")]
    sql: bool,
    #[command(flatten)]
    out: Output,
}

/// `audit backfill` options.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Rule files.
    #[arg(required = true)]
    rules: Vec<PathBuf>,
    /// Only events at or after this time.
    #[arg(long)]
    since: Option<String>,
    /// Report plain rule matches too, not only sequences.
    #[arg(long)]
    all_rules: bool,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Audit directory (default: `<data dir>/audit`), or a cluster's shared audit
    /// `s3://BUCKET/PREFIX` (credentials and endpoint from the `AWS_*` variables).
    #[arg(long)]
    audit_dir: Option<PathBuf>,
}

/// `audit generate` options.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Approximate number of benign events.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Planted chains.
    #[arg(long, default_value_t = 5)]
    chains: u32,
    /// Identities.
    #[arg(long, default_value_t = 200)]
    identities: u32,
    /// Span of the history.
    #[arg(long, default_value = "24h")]
    span: String,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Events per Parquet file.
    #[arg(long, default_value_t = 200_000)]
    per_file: usize,
    /// Every identity uses all three protocols (each benign step takes a random
    /// role), so benign traffic forms chains too; by default each identity keeps to
    /// one protocol.
    #[arg(long)]
    mixed_roles: bool,
    /// Audit directory to write (default: `<data dir>/audit`).
    #[arg(long)]
    audit_dir: Option<PathBuf>,
}

fn audit_dir(given: &Option<PathBuf>, data_dir: &std::path::Path) -> PathBuf {
    given.clone().unwrap_or_else(|| data_dir.join("audit"))
}

fn normalize_since(s: &str) -> String {
    if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    }
}

fn emit(batches: &[RecordBatch], out: &Output) -> anyhow::Result<()> {
    if let Format::Parquet = out.format {
        let path = out
            .output
            .as_ref()
            .context("`--format parquet` needs `--output FILE`")?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .context("the query returned no batches")?;
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create `{}`", path.display()))?;
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
        for b in batches {
            w.write(b)?;
        }
        w.close()?;
        return Ok(());
    }
    let format = match out.format {
        Format::Table | Format::Parquet => OutputFormat::Table,
        Format::Csv => OutputFormat::Csv,
        Format::Json => OutputFormat::Json,
    };
    match &out.output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("cannot create `{}`", path.display()))?;
            gatehouse_analytics::write_batches(&mut f, batches, format)?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let written = gatehouse_analytics::write_batches(&mut lock, batches, format)
                .map_err(anyhow::Error::from)
                .and_then(|()| lock.flush().map_err(anyhow::Error::from));
            // `gatehouse audit sql ... | head`: the reader has what it wanted.
            if let Err(e) = written
                && !e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                })
            {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs an audit subcommand.
pub fn run(cmd: AuditCommand, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cmd {
            AuditCommand::Sql(args) => {
                let audit = super::store::audit(&audit_dir(&args.out.audit_dir, data_dir)).await?;
                match &args.query {
                    Some(q) => {
                        let started = std::time::Instant::now();
                        let rows = audit.sql(q).await?;
                        args.out.timed(started, &rows);
                        emit(&rows, &args.out)?;
                    }
                    None => shell(&audit, &args.out).await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Chains(args) => {
                let within = gatehouse_core::config::parse_duration(&args.within)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let q = ChainQuery {
                    within,
                    since: args.since.as_deref().map(normalize_since),
                    partial: !args.full_only,
                };
                if args.print_sql {
                    println!("{};", q.sql());
                    return Ok(ExitCode::SUCCESS);
                }
                let audit = super::store::audit(&audit_dir(&args.out.audit_dir, data_dir)).await?;
                let started = std::time::Instant::now();
                let batches = if args.sql {
                    audit.chains_sql(&q).await?
                } else {
                    audit.chains(&q).await?
                };
                args.out.timed(started, &batches);
                let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if n == 0 && matches!(args.out.format, Format::Table) && args.out.output.is_none() {
                    println!("no chains found (within {})", args.within);
                } else {
                    emit(&batches, &args.out)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Backfill(args) => {
                let policy = Policy::load(&args.rules, PolicyOptions::default())
                    .map_err(|e| anyhow::anyhow!("{}", e.render(100)))?;
                let audit = super::store::audit(&audit_dir(&args.audit_dir, data_dir)).await?;
                let since = args.since.as_deref().map(normalize_since);
                let mut stream = audit.events_in_order(since.as_deref()).await?;
                let mut matches = Vec::new();
                let mut events = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let evs = gatehouse_events::arrow::from_record_batch(&batch)?;
                    events += evs.len();
                    matches.extend(backfill(&policy, evs, !args.all_rules));
                }
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                for m in &matches {
                    if args.json {
                        writeln!(out, "{}", serde_json::to_string(m)?)?;
                    } else {
                        let related: Vec<String> =
                            m.related.iter().map(ToString::to_string).collect();
                        writeln!(
                            out,
                            "{}  {}  {}  {}  completing={}  related=[{}]",
                            m.time,
                            m.rule,
                            m.identity,
                            m.effect,
                            m.request,
                            related.join(",")
                        )?;
                    }
                }
                eprintln!("{} match(es) over {events} events", matches.len());
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Generate(args) => {
                let span = gatehouse_core::config::parse_duration(&args.span)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let spec = gatehouse_events::synth::HistorySpec {
                    identities: args.identities,
                    benign_events: args.events,
                    chains: args.chains,
                    span: chrono::Duration::from_std(span).unwrap_or(chrono::Duration::hours(24)),
                    seed: args.seed,
                    mixed_roles: args.mixed_roles,
                    ..gatehouse_events::synth::HistorySpec::default()
                };
                let dir = audit_dir(&args.audit_dir, data_dir);
                let started = std::time::Instant::now();
                let (events, planted) = gatehouse_events::synth::history(&spec);
                let n = events.len();
                let written = write_generated(&dir, events, args.per_file)?;
                eprintln!(
                    "wrote {n} events in {written} files under {} in {:.1?}; {} planted chains",
                    dir.display(),
                    started.elapsed(),
                    planted.len()
                );
                for c in planted {
                    println!(
                        "{} {} recon={} hop={} pod={}",
                        c.identity, c.host, c.recon, c.hop, c.pod
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn write_generated(
    dir: &std::path::Path,
    events: Vec<gatehouse_events::Event>,
    per_file: usize,
) -> anyhow::Result<usize> {
    use std::collections::BTreeMap;
    let mut parts: BTreeMap<(chrono::NaiveDate, &'static str), Vec<gatehouse_events::Event>> =
        BTreeMap::new();
    for e in events {
        parts
            .entry(gatehouse_ship::parquet::partition_of(&e))
            .or_default()
            .push(e);
    }
    let mut files = 0;
    let mut seq = 0usize;
    for ((day, proto), evs) in parts {
        let d = dir.join(gatehouse_ship::parquet::partition_dir(day, proto));
        for chunk in evs.chunks(per_file.max(1)) {
            seq += 1;
            gatehouse_ship::parquet::write_file(&d, &format!("gen-{seq:06}.parquet"), chunk)?;
            files += 1;
        }
    }
    Ok(files)
}

async fn shell(audit: &Audit, out: &Output) -> anyhow::Result<()> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        eprintln!(
            "gatehouse audit shell — tables: events and views {}; end statements with `;`, `\\q` quits",
            gatehouse_analytics::catalog::VIEWS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stdin = std::io::stdin();
    let mut buf = String::new();
    let prompt = |cont: bool| {
        if interactive {
            eprint!("{}", if cont { "   ...> " } else { "audit> " });
            let _ = std::io::stderr().flush();
        }
    };
    prompt(false);
    for line in stdin.lock().lines() {
        let line = line?;
        if buf.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
            break;
        }
        buf.push_str(&line);
        buf.push('\n');
        if line.trim_end().ends_with(';') {
            let q = buf.trim().trim_end_matches(';').to_owned();
            buf.clear();
            let started = std::time::Instant::now();
            match audit.sql(&q).await {
                Ok(batches) => {
                    emit(&batches, out)?;
                    if interactive {
                        eprintln!(
                            "({} rows, {:.3?})",
                            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
                            started.elapsed()
                        );
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            }
            prompt(false);
        } else {
            prompt(true);
        }
    }
    let _ = Duration::ZERO;
    Ok(())
}
