//! `gatehouse serve`: the gateway.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions};
use gatehouse_core::identity::Authenticator;
use gatehouse_core::log::{EventLog, LogConfig, Retention};
use gatehouse_core::policy::{PolicyHandle, PolicyOptions};
use gatehouse_ship::kafka::{KafkaOptions, KafkaSink};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink};
use gatehouse_ship::{Cursor, ShipOptions, Source};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file.
    #[arg(
        long,
        short,
        default_value = "gatehouse.toml",
        env = "GATEHOUSE_CONFIG"
    )]
    config: PathBuf,
}

/// Loads the configuration, for every command that needs it.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in config.warnings() {
        tracing::warn!(message = "Configuration warning.", warning = %w);
    }
    Ok(config)
}

/// Runs the gateway until SIGINT/SIGTERM. `data_dir`, when given on the command line
/// (`--data-dir` or `GATEHOUSE_DATA_DIR`), overrides the config file's `data_dir`.
pub fn run(args: ServeArgs, data_dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if let Some(dir) = data_dir {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("data directory `{}`", dir.display()))?;
        if dir != config.data_dir {
            tracing::info!(
                message = "Data directory from the command line overrides the configuration file's.",
                data_dir = %dir.display(),
                config_data_dir = %config.data_dir.display()
            );
        }
        config.data_dir = dir;
    }
    let config = Arc::new(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gatehouse")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn load_policy(config: &Config) -> anyhow::Result<PolicyHandle> {
    if config.policy.files.is_empty() {
        tracing::warn!(
            message = "No rule files configured: every request is denied (default deny)."
        );
    }
    PolicyHandle::load(&config.policy.files, PolicyOptions::default())
        .map_err(|e| anyhow::anyhow!("the policy does not load:\n{}", e.render(100)))
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let mut log_config = LogConfig::new(config.data_dir.join("log"));
    log_config.durability = config
        .log
        .durability()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    log_config.segment_bytes = config.log.segment_bytes;
    log_config.retention = Retention {
        max_age: config.log.retention_age,
        max_bytes: config.log.retention_bytes,
    };
    let log = Arc::new(EventLog::open(log_config).context("cannot open the event log")?);
    let policy = load_policy(&config)?;
    let auth = Authenticator::from_config(&config, Some(jwks_fetcher()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = EngineOptions::new(config.gateway_id());
    options.approval_timeout = config.approvals.default_timeout;
    options.max_grant = config.approvals.max_grant;
    options.notifier = crate::cli::notify::webhook(&config)?;
    options.hosts = Arc::new(gatehouse_core::hosts::HostResolver::new(
        config.resolver_options(),
    ));
    let engine = Engine::open(options, log.clone(), policy, auth)
        .context("cannot rebuild state from the event log")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shippers = JoinSet::new();
    let mut cluster = JoinSet::new();
    let cursor_dir = config.data_dir.join("cursors");
    let mut cursor_names = Vec::new();
    let mut ship_options = ShipOptions::new(&cursor_dir);
    ship_options.gateway_id = engine.gateway_id().to_owned();
    if config.shipping.parquet.enabled {
        let mut p = ParquetOptions::new(
            config
                .shipping
                .parquet
                .dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("audit")),
        );
        p.max_rows = config.shipping.parquet.max_rows;
        p.max_age = config.shipping.parquet.max_age;
        if let Some(url) = &config.shipping.parquet.store {
            let mut settings = config.shipping.parquet.store_options.clone();
            for (name, secret) in &config.shipping.parquet.store_secret_options {
                let value = secret.resolve().map_err(|e| {
                    anyhow::anyhow!("shipping.parquet.store_secret_options.{name}: {e}")
                })?;
                settings.insert(name.clone(), value.expose().to_owned());
            }
            let store = super::store::open(url, &settings).context("shipping.parquet.store")?;
            p.remote = Some(gatehouse_ship::parquet::RemoteAudit {
                store: store.store,
                prefix: store.prefix,
                gateway_id: engine.gateway_id().to_owned(),
            });
        }
        shippers.spawn(gatehouse_ship::run(
            Source::Live(log.clone()),
            ParquetSink::new(p)?,
            ship_options.clone(),
            stop_rx.clone(),
        ));
        cursor_names.push("parquet");
    }
    if let Some(k) = &config.shipping.kafka {
        let mut o = KafkaOptions::new(&k.brokers);
        o.events_topic = k.events_topic.clone();
        o.alerts_topic = k.alerts_topic.clone();
        o.delivery_timeout = k.delivery_timeout;
        o.properties = k.properties.clone();
        for (name, secret) in &k.secret_properties {
            let value = secret
                .resolve()
                .map_err(|e| anyhow::anyhow!("shipping.kafka.secret_properties.{name}: {e}"))?;
            o.properties.insert(name.clone(), value.expose().to_owned());
        }
        if config.cluster.enabled {
            // Every record carries its native event, and this gateway folds the
            // other gateways' records into its state (ADR 0025).
            o.native = true;
            let fold = gatehouse_ship::cluster::FoldOptions {
                brokers: o.brokers.clone(),
                topic: o.events_topic.clone(),
                gateway_id: engine.gateway_id().to_owned(),
                properties: o.properties.clone(),
            };
            let progress = Arc::new(gatehouse_ship::cluster::Progress::default());
            o.own = Some(progress.clone());
            engine.set_cluster(Arc::new(gatehouse_ship::cluster::KafkaLink::new(
                &fold,
                progress.clone(),
            )?));
            let (engine, stop) = (engine.clone(), stop_rx.clone());
            cluster.spawn(async move {
                match gatehouse_ship::cluster::fold(fold, engine, progress, stop).await {
                    Ok(n) => tracing::info!(message = "Cluster fold stopped.", applied = n),
                    Err(error) => tracing::error!(message = "Cluster fold failed.", %error),
                }
            });
        }
        shippers.spawn(gatehouse_ship::run(
            Source::Live(log.clone()),
            KafkaSink::new(o)?,
            ship_options.clone(),
            stop_rx.clone(),
        ));
        cursor_names.push("kafka");
    }

    let mut background = JoinSet::new();
    background.spawn(engine.clone().run_expiry());
    background.spawn(engine.clone().run_log_recovery());
    background.spawn(retention(log.clone(), cursor_dir, cursor_names));
    background.spawn(reload_on_change(engine.clone(), config.clone()));

    let proxies = super::proxies::start(&engine, &config, stop_rx.clone()).await?;
    let admin = crate::cli::admin::start(engine.clone(), config.clone(), stop_rx.clone()).await?;
    tracing::info!(
        message = "Gatehouse ready.",
        gateway = %engine.gateway_id(),
        log = %log.dir().display(),
        admin = %admin,
        proxies = %proxies.join(", "),
    );

    crate::cli::signals::terminated().await;
    tracing::info!(message = "Shutting down: closing listeners, flushing shippers.");
    let _ = stop_tx.send(true);
    background.abort_all();
    cluster.abort_all();
    let flush = async {
        while let Some(done) = shippers.join_next().await {
            match done {
                Ok(Ok(next)) => tracing::info!(message = "Shipper stopped.", next_offset = next),
                Ok(Err(error)) => tracing::error!(message = "Shipper failed.", %error),
                Err(error) => tracing::error!(message = "Shipper task failed.", %error),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), flush)
        .await
        .is_err()
    {
        tracing::warn!(
            message = "Shippers did not finish within 30 s; they resume from their cursors on the next start."
        );
    }
    log.sync().context("final fsync of the event log")?;
    Ok(())
}

/// Removes shipped segments the retention settings allow to drop.
async fn retention(log: Arc<EventLog>, cursor_dir: PathBuf, sinks: Vec<&'static str>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let keep_from = sinks
            .iter()
            .map(|s| Cursor::load(&cursor_dir, s).map(|c| c.next()).unwrap_or(0))
            .min()
            .unwrap_or(log.next_offset());
        match log.apply_retention(keep_from) {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                message = "Retention removed shipped segments.",
                count = removed.len()
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(message = "Retention failed.", %error),
        }
    }
}

fn mtimes(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Reloads the policy on SIGHUP and when a rule file changes: validate first, then
/// swap atomically; a bad file keeps the last good rule set.
async fn reload_on_change(engine: Arc<Engine>, config: Arc<Config>) {
    let files = config.policy.files.clone();
    let mut seen = mtimes(&files);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let signalled = async {
            match &mut hup {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let by_signal = tokio::select! {
            () = signalled => true,
            () = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        let now = mtimes(&files);
        if !by_signal && (!config.policy.watch || now == seen) {
            continue;
        }
        seen = now;
        match engine.policy().reload(&files) {
            Ok(r) => {
                tracing::info!(message = "Policy reloaded.", version = %r.version, live_partials = r.live_partials, warnings = r.warnings.len(), trigger = if by_signal { "SIGHUP" } else { "file change" })
            }
            Err(e) => {
                tracing::error!(message = "Policy reload failed; keeping the last good rule set.", diagnostics = %e.render(100))
            }
        }
    }
}

/// Fetches `[[oidc]] jwks_url` documents (HTTPS with the Mozilla roots, or plain HTTP).
/// The verifier caches the result for `jwks_cache` and refetches once on an unknown
/// key id (rotation).
fn jwks_fetcher() -> gatehouse_core::identity::JwksFetcher {
    let client = Arc::new(gatehouse_admin::client::HttpClient::new(
        Duration::from_secs(10),
    ));
    Arc::new(move |url: String| {
        let client = client.clone();
        Box::pin(async move {
            match client.send(hyper::Method::GET, &url, None, None).await {
                Ok((status, body)) if status.is_success() => Ok(body.to_vec()),
                Ok((status, _)) => Err(format!("the JWKS URL answered {status}")),
                Err(e) => Err(e.to_string()),
            }
        })
    })
}
