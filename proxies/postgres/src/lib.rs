//! The Gatehouse PostgreSQL proxy.
//!
//! A client (`psql`, `pgbench`, a driver, an ORM) connects as it would to PostgreSQL,
//! with a Gatehouse token as its password. Every statement is parsed and classified
//! ([`classify`]), judged by the engine, enforced (block, mask, hold for approval) and
//! recorded before it is forwarded to the upstream server, which Gatehouse reaches with
//! the credential it holds ([`upstream`]).
//!
//! Both sockets of a session are served by one task ([`relay`]); upstream bytes are
//! passed through untouched except where a mask rewrites a data row.

#![warn(missing_docs)]

pub mod cancel;
pub mod catalog;
pub mod classify;
pub mod mask;
pub mod relay;
mod server;
pub mod settings;
pub mod upstream;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::config::Config;
use gatehouse_core::engine::Engine;
use gatehouse_events::Protocol;

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// TLS for clients (`SSLRequest` is refused without it).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept tokens over unencrypted connections from non-loopback clients.
    pub allow_plaintext_password: bool,
    /// Largest client message, bytes.
    pub max_message: usize,
    /// Result rows kept in each result event (after masking).
    pub sample_rows: usize,
    /// Result bytes kept in each result event.
    pub sample_bytes: usize,
    /// Query strings whose classification is cached (by normalised text).
    pub cache_capacity: usize,
    /// Most statements one query string may hold; a longer one is refused with
    /// SQLSTATE 54000 before any of it is judged or run.
    pub max_statements: usize,
    /// Opening an upstream session (connect, TLS, login, ready) must finish within this.
    pub connect_timeout: Duration,
    /// Client login timeout.
    pub login_timeout: Duration,
    /// Longest a session busy-polls for an answer while no other session has a
    /// statement in flight (zero: never). See `relay::spin`.
    pub busy_poll: Duration,
    /// How long a reading of a target's catalog is trusted (DDL done elsewhere shows
    /// after at most this long); `None`: the catalog is not read, and views and
    /// functions are not expanded.
    pub catalog_ttl: Option<Duration>,
    /// Read the catalog from this `host:port` instead of the target's upstream (a
    /// replica), with the target's credential.
    pub catalog_upstream: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tls: None,
            allow_plaintext_password: false,
            max_message: 64 << 20,
            sample_rows: 5,
            sample_bytes: 2048,
            cache_capacity: 10_000,
            max_statements: gatehouse_core::config::DEFAULT_PG_MAX_STATEMENTS,
            connect_timeout: gatehouse_core::config::DEFAULT_PG_CONNECT_TIMEOUT,
            login_timeout: Duration::from_secs(60),
            busy_poll: Duration::from_micros(50),
            catalog_ttl: Some(gatehouse_core::config::DEFAULT_PG_CATALOG_TTL),
            catalog_upstream: None,
        }
    }
}

/// A setup problem (upstream TLS configuration).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A target's TLS settings are unusable.
    #[error("target `{target}`: {message}")]
    Target {
        /// Target.
        target: String,
        /// Problem.
        message: String,
    },
}

/// The PostgreSQL proxy.
pub struct PgProxy {
    engine: Arc<Engine>,
    config: Arc<Config>,
    options: Options,
    cache: Arc<classify::Cache>,
    cancels: cancel::CancelKeys,
    upstream_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    load: Arc<relay::spin::Load>,
    /// Heavy segments judged at once, off the async workers (see `relay::HEAVY_BYTES`).
    heavy: Arc<tokio::sync::Semaphore>,
    /// SCRAM keys derived from target passwords (see `upstream::scram`).
    scram_keys: upstream::scram::KeyCache,
    /// Each target's catalog, shared by its sessions.
    catalogs: HashMap<String, Arc<catalog::Catalog>>,
}

impl PgProxy {
    /// Messages read by busy polling since the proxy started (see `relay::spin`).
    pub fn busy_poll_reads(&self) -> u64 {
        self.load.reads()
    }

    /// Log writes of result events made while a lone session's client read its
    /// answer, instead of with the session's next request (see `relay::spin`).
    pub fn idle_result_writes(&self) -> u64 {
        self.load.idle_writes()
    }

    /// PBKDF2 derivations of upstream SCRAM keys since the proxy started: one per
    /// target credential and server salt, however many logins.
    pub fn scram_derivations(&self) -> u64 {
        self.scram_keys.derivations()
    }

    /// A proxy for the Postgres targets of `config`.
    pub fn new(
        engine: Arc<Engine>,
        config: Arc<Config>,
        options: Options,
    ) -> Result<Arc<Self>, SetupError> {
        let mut upstream_tls = HashMap::new();
        for t in config
            .targets
            .iter()
            .filter(|t| t.protocol == Protocol::Postgres && t.tls)
        {
            let Some(ca) = &t.ca else {
                return Err(SetupError::Target {
                    target: t.name.clone(),
                    message: "`tls = true` needs `ca` (the CA that signed the server certificate)"
                        .into(),
                });
            };
            let c = gatehouse_proxy_common::client_config(ca).map_err(|e| SetupError::Target {
                target: t.name.clone(),
                message: e.to_string(),
            })?;
            upstream_tls.insert(t.name.clone(), c);
        }
        let mut catalogs = HashMap::new();
        if let Some(ttl) = options.catalog_ttl {
            for t in config
                .targets
                .iter()
                .filter(|t| t.protocol == Protocol::Postgres)
            {
                let mut target = t.clone();
                if let Some(addr) = &options.catalog_upstream {
                    target.upstream.clone_from(addr);
                }
                let source = catalog::Source {
                    target,
                    tls: upstream_tls.get(&t.name).cloned(),
                    timeout: options.connect_timeout,
                    keys: upstream::scram::KeyCache::default(),
                };
                catalogs.insert(t.name.clone(), Arc::new(catalog::Catalog::new(source, ttl)));
            }
        }
        Ok(Arc::new(Self {
            engine,
            catalogs,
            config,
            cache: Arc::new(classify::Cache::new(options.cache_capacity)),
            options,
            cancels: cancel::CancelKeys::default(),
            upstream_tls,
            load: Arc::default(),
            heavy: Arc::new(tokio::sync::Semaphore::new(heavy_permits())),
            scram_keys: upstream::scram::KeyCache::default(),
        }))
    }
}

/// Heavy segments judged at once: half the CPUs (at least one), so the async workers
/// keep the rest.
fn heavy_permits() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
