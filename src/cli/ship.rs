//! `gatehouse ship`: run the shippers against a log directory (the gateway runs the
//! same shippers in-process under `serve`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gatehouse_ship::kafka::{KafkaOptions, KafkaSink};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink};
use gatehouse_ship::{ShipOptions, Source};
use tokio::sync::watch;

/// `ship` options.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Log directory (default: `<data dir>/log`).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Write Parquet files under this directory (default: `<data dir>/audit` when
    /// `--parquet` is given).
    #[arg(long)]
    parquet_dir: Option<PathBuf>,
    /// Ship to Parquet.
    #[arg(long)]
    parquet: bool,
    /// Ship to Kafka at these bootstrap servers (`host:port,...`).
    #[arg(long)]
    kafka: Option<String>,
    /// Events topic.
    #[arg(long, default_value = "gatehouse.events")]
    events_topic: String,
    /// Alerts topic.
    #[arg(long, default_value = "gatehouse.alerts")]
    alerts_topic: String,
    /// Kafka delivery timeout before a batch is retried, in seconds.
    #[arg(long, default_value_t = 30)]
    delivery_timeout_s: u64,
    /// Roll Parquet files after this many events.
    #[arg(long, default_value_t = 200_000)]
    parquet_max_rows: usize,
    /// Roll Parquet files at least this often, in seconds.
    #[arg(long, default_value_t = 30)]
    parquet_max_age_s: u64,
    /// Exit once every record before this offset is shipped (default: run until
    /// interrupted).
    #[arg(long)]
    until: Option<u64>,
}

/// Runs the shippers until interrupted (or `--until`).
pub fn run(args: ShipArgs, data_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    if !args.parquet && args.kafka.is_none() {
        anyhow::bail!("nothing to ship to: give `--parquet` and/or `--kafka BROKERS`");
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| data_dir.join("log"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut options = ShipOptions::new(data_dir.join("cursors"));
        options.stop_at = args.until;
        options.gateway_id = "gatehouse-ship".into();
        let source = Source::Dir(log_dir);
        let mut tasks = tokio::task::JoinSet::new();
        if args.parquet {
            let mut p = ParquetOptions::new(
                args.parquet_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("audit")),
            );
            p.max_rows = args.parquet_max_rows;
            p.max_age = Duration::from_secs(args.parquet_max_age_s);
            let sink = ParquetSink::new(p)?;
            tasks.spawn(gatehouse_ship::run(
                source.clone(),
                sink,
                options.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(brokers) = &args.kafka {
            let mut k = KafkaOptions::new(brokers);
            k.events_topic = args.events_topic.clone();
            k.alerts_topic = args.alerts_topic.clone();
            k.delivery_timeout = Duration::from_secs(args.delivery_timeout_s);
            let sink = KafkaSink::new(k)?;
            tasks.spawn(gatehouse_ship::run(
                source.clone(),
                sink,
                options.clone(),
                stop_rx.clone(),
            ));
        }
        tokio::spawn(async move {
            crate::cli::signals::terminated().await;
            tracing::info!(message = "Stopping shippers after a final flush.");
            let _ = stop_tx.send(true);
        });
        while let Some(done) = tasks.join_next().await {
            let shipped = done.context("shipper task failed")??;
            tracing::info!(message = "Shipper stopped.", next_offset = shipped);
        }
        Ok(ExitCode::SUCCESS)
    })
}
