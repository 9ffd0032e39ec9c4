//! `gatehouse.toml`: the gateway's configuration.
//!
//! Every struct rejects unknown keys, so a typo is an error, not a silently ignored
//! setting. The doc comments here are the reference; `docs/configuration.md` renders
//! them with examples (`engine/core/tests/config_reference.rs` keeps the two in step).

mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_events::Protocol;
use serde::{Deserialize, Deserializer};

pub use secret::{Secret, SecretError, SecretRef};

use crate::log::Durability;

/// Parses `15m`, `30s`, `2h 30m`, `7d` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `30s`, `15m`, `2h`"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this gateway instance, recorded in every event (default: host name).
    #[serde(default)]
    pub gateway_id: Option<String>,
    /// Directory for the event log, cursors, Parquet audit and keys (default `.gatehouse`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Event log settings.
    #[serde(default)]
    pub log: LogSection,
    /// Shipping to Parquet and Kafka.
    #[serde(default)]
    pub shipping: ShippingSection,
    /// Rule files.
    #[serde(default)]
    pub policy: PolicySection,
    /// Agent credentials issued by Gatehouse.
    #[serde(default)]
    pub tokens: TokensSection,
    /// OIDC identity providers whose JWTs are accepted.
    #[serde(default)]
    pub oidc: Vec<OidcProvider>,
    /// Roles (from federated tokens) and what they may reach.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Human approvals.
    #[serde(default)]
    pub approvals: ApprovalsSection,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminSection,
    /// Where the proxies listen.
    #[serde(default)]
    pub listen: ListenSection,
    /// Protected targets.
    #[serde(default, rename = "target")]
    pub targets: Vec<Target>,
    /// SSH proxy settings.
    #[serde(default)]
    pub ssh: SshSection,
    /// PostgreSQL proxy settings.
    #[serde(default)]
    pub postgres: PostgresSection,
    /// How hosts are resolved for events (SSH targets, captured host names).
    #[serde(default)]
    pub resolver: ResolverSection,
    /// Several gateways behaving as one (ADR 0025).
    #[serde(default)]
    pub cluster: ClusterSection,
}

/// `[cluster]`: this gateway folds the events other gateways publish to the Kafka
/// events topic (`[shipping.kafka]`) into its own state: approvals decided anywhere,
/// revocations, sequence stages (ADR 0025).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Fold other gateways' events.
    #[serde(default)]
    pub enabled: bool,
}

/// `[resolver]`: how the gateway resolves the hosts events name, so that chains
/// compare hosts as hosts (docs/rules.md, "Hosts").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverSection {
    /// Hosts file read for names and addresses (`/etc/hosts`); `""` reads none.
    #[serde(default = "default_hosts_file")]
    pub hosts_file: PathBuf,
    /// Ask the system resolver (`getaddrinfo`) for names the hosts file lacks.
    #[serde(default = "default_true")]
    pub dns: bool,
    /// Longest wait for one system-resolver lookup.
    #[serde(default = "default_resolver_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for ResolverSection {
    fn default() -> Self {
        Self {
            hosts_file: default_hosts_file(),
            dns: true,
            timeout: default_resolver_timeout(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_hosts_file() -> PathBuf {
    PathBuf::from("/etc/hosts")
}

fn default_resolver_timeout() -> Duration {
    Duration::from_millis(250)
}

impl Config {
    /// Resolver options: `[resolver]` and each target's upstream host with its `aliases`.
    pub fn resolver_options(&self) -> crate::hosts::ResolverOptions {
        crate::hosts::ResolverOptions {
            hosts_file: (!self.resolver.hosts_file.as_os_str().is_empty())
                .then(|| self.resolver.hosts_file.clone()),
            dns: self.resolver.dns,
            timeout: self.resolver.timeout,
            aliases: self
                .targets
                .iter()
                .filter(|t| !t.aliases.is_empty())
                .map(|t| {
                    std::iter::once(crate::hosts::upstream_host(&t.upstream).to_owned())
                        .chain(t.aliases.iter().cloned())
                        .collect()
                })
                .collect(),
        }
    }
}

/// `[postgres]`: PostgreSQL proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// While no other session is active, a session that forwarded a message watches
    /// the socket its answer comes from for up to this long before parking its
    /// thread (lower latency for one busy client, for CPU time). `0s` turns it off.
    #[serde(default = "default_pg_busy_poll", deserialize_with = "duration")]
    pub busy_poll: Duration,
    /// Most statements one query string may hold. A longer string is refused whole
    /// (SQLSTATE 54000) before any of it is judged or run, and the refusal recorded.
    #[serde(default = "default_pg_max_statements")]
    pub max_statements: usize,
    /// Opening the upstream session for a login (TCP connect, TLS handshake,
    /// authentication, waiting for the server to be ready) must finish within this;
    /// the error names the step that was under way.
    #[serde(default = "default_pg_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// How long a reading of a target's catalog (relation kinds, view definitions,
    /// function bodies) is trusted; DDL done other than through the gateway is seen
    /// after at most this long. `0s` turns catalog reading off.
    #[serde(default = "default_pg_catalog_ttl", deserialize_with = "duration")]
    pub catalog_ttl: Duration,
}

impl Default for PostgresSection {
    fn default() -> Self {
        Self {
            busy_poll: default_pg_busy_poll(),
            max_statements: default_pg_max_statements(),
            connect_timeout: default_pg_connect_timeout(),
            catalog_ttl: default_pg_catalog_ttl(),
        }
    }
}

/// Default of `postgres.max_statements`.
pub const DEFAULT_PG_MAX_STATEMENTS: usize = 10_000;

fn default_pg_max_statements() -> usize {
    DEFAULT_PG_MAX_STATEMENTS
}

/// Default of `postgres.catalog_ttl`.
pub const DEFAULT_PG_CATALOG_TTL: Duration = Duration::from_secs(30);

fn default_pg_catalog_ttl() -> Duration {
    DEFAULT_PG_CATALOG_TTL
}

/// Default of `postgres.connect_timeout`.
pub const DEFAULT_PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn default_pg_connect_timeout() -> Duration {
    DEFAULT_PG_CONNECT_TIMEOUT
}

/// Longest `postgres.busy_poll`.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(1);

fn default_pg_busy_poll() -> Duration {
    Duration::from_micros(50)
}

/// `[ssh]`: SSH proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSection {
    /// The gateway's SSH host key (OpenSSH private key), created on first run
    /// (default `<data_dir>/keys/ssh_host_ed25519`).
    #[serde(default)]
    pub host_key_file: Option<PathBuf>,
    /// Upstream host keys learned on first use (default `<data_dir>/ssh_known_hosts`).
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// Bytes of each channel's input and output recorded as `session_data` events
    /// (the rest is counted, not recorded).
    #[serde(default = "default_ssh_record_bytes")]
    pub record_bytes: u64,
    /// A client must finish the SSH handshake and authenticate within this time.
    #[serde(
        default = "default_ssh_handshake_timeout",
        deserialize_with = "duration"
    )]
    pub handshake_timeout: Duration,
    /// Agent SSH public keys accepted instead of a token (`[[ssh.agent_key]]`).
    #[serde(default, rename = "agent_key")]
    pub agent_keys: Vec<AgentKey>,
}

/// `[[ssh.agent_key]]`: an agent's SSH public key, mapped to an identity and a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentKey {
    /// The identity events carry (`agent:deploy-bot`).
    pub identity: String,
    /// The target this key reaches.
    pub target: String,
    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    /// Sessions opened with the key are closed after this long.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub session_ttl: Duration,
}

fn default_ssh_record_bytes() -> u64 {
    1024 * 1024
}
fn default_ssh_handshake_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for SshSection {
    fn default() -> Self {
        Self {
            host_key_file: None,
            known_hosts_file: None,
            record_bytes: default_ssh_record_bytes(),
            handshake_timeout: default_ssh_handshake_timeout(),
            agent_keys: Vec::new(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".gatehouse")
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `batch` (default: written before the command runs, fsynced every
    /// `fsync_interval`) or `strict` (fsynced before the command runs).
    #[serde(default = "default_durability")]
    pub durability: String,
    /// fsync interval in `batch` mode.
    #[serde(default = "default_fsync_interval", deserialize_with = "duration")]
    pub fsync_interval: Duration,
    /// Segment size before rotation, in bytes.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Drop shipped segments older than this.
    #[serde(default, deserialize_with = "opt_duration")]
    pub retention_age: Option<Duration>,
    /// Drop the oldest shipped segments while the log is larger than this many bytes.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
}

fn default_durability() -> String {
    "batch".into()
}
fn default_fsync_interval() -> Duration {
    Duration::from_millis(10)
}
fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            durability: default_durability(),
            fsync_interval: default_fsync_interval(),
            segment_bytes: default_segment_bytes(),
            retention_age: None,
            retention_bytes: None,
        }
    }
}

impl LogSection {
    /// The durability mode.
    pub fn durability(&self) -> Result<Durability, ConfigError> {
        match self.durability.as_str() {
            "strict" => Ok(Durability::Strict),
            "batch" => Ok(Durability::Batch {
                interval_ms: self.fsync_interval.as_millis() as u64,
            }),
            other => Err(ConfigError::Invalid(format!(
                "log.durability: `{other}` is not `strict` or `batch`"
            ))),
        }
    }
}

/// `[shipping]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingSection {
    /// `[shipping.parquet]`: on by default.
    #[serde(default)]
    pub parquet: ParquetShipping,
    /// `[shipping.kafka]`: off unless configured.
    #[serde(default)]
    pub kafka: Option<KafkaShipping>,
}

/// `[shipping.parquet]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetShipping {
    /// Write Parquet files.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Audit directory (default `<data_dir>/audit`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Roll files after this many events.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Roll files at least this often.
    #[serde(default = "default_roll_age", deserialize_with = "duration")]
    pub max_age: Duration,
    /// A shared audit: finished files go to this object store (`s3://bucket/prefix`),
    /// named with the gateway's id, and `dir` only holds files being written.
    #[serde(default)]
    pub store: Option<String>,
    /// `object_store` S3 settings (`endpoint`, `region`, `allow_http`, ...), applied
    /// over the standard `AWS_*` environment variables.
    #[serde(default)]
    pub store_options: BTreeMap<String, String>,
    /// S3 settings whose values are secrets (`access_key_id`, `secret_access_key`).
    #[serde(default)]
    pub store_secret_options: BTreeMap<String, SecretRef>,
}

fn yes() -> bool {
    true
}
fn default_max_rows() -> usize {
    200_000
}
fn default_roll_age() -> Duration {
    Duration::from_secs(30)
}

impl Default for ParquetShipping {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            max_rows: default_max_rows(),
            max_age: default_roll_age(),
            store: None,
            store_options: BTreeMap::new(),
            store_secret_options: BTreeMap::new(),
        }
    }
}

/// `[shipping.kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaShipping {
    /// `bootstrap.servers`, e.g. `kafka-1:9092,kafka-2:9092`.
    pub brokers: String,
    /// Topic for every event (OCSF JSON).
    #[serde(default = "default_events_topic")]
    pub events_topic: String,
    /// Topic for detection findings (alerts).
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Delivery timeout before a batch is retried.
    #[serde(default = "default_delivery_timeout", deserialize_with = "duration")]
    pub delivery_timeout: Duration,
    /// Extra librdkafka producer properties (`security.protocol`, `sasl.*`, ...).
    /// Secret-valued properties can be given as `{ env = "..." }` in `secret_properties`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (e.g. `sasl.password`).
    #[serde(default)]
    pub secret_properties: BTreeMap<String, SecretRef>,
}

fn default_events_topic() -> String {
    "gatehouse.events".into()
}
fn default_alerts_topic() -> String {
    "gatehouse.alerts".into()
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[policy]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// `.rules` files (paths relative to the config file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Watch the files and reload on change (SIGHUP always reloads).
    #[serde(default = "yes")]
    pub watch: bool,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    /// Ed25519 signing key (PKCS#8 DER), created on first run (default `<data_dir>/keys/token.ed25519`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Lifetime when `--ttl` is not given.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub default_ttl: Duration,
    /// Longest lifetime `token issue` accepts.
    #[serde(default = "default_max_ttl", deserialize_with = "duration")]
    pub max_ttl: Duration,
}

fn default_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for TokensSection {
    fn default() -> Self {
        Self {
            key_file: None,
            default_ttl: default_ttl(),
            max_ttl: default_max_ttl(),
        }
    }
}

/// `[[oidc]]`: an identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (one of).
    pub audiences: Vec<String>,
    /// JWKS file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (fetched, cached for `jwks_cache`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How long a fetched JWKS is trusted.
    #[serde(default = "default_jwks_cache", deserialize_with = "duration")]
    pub jwks_cache: Duration,
    /// Claim naming the identity (default `sub`). Dotted paths reach into objects.
    #[serde(default = "default_identity_claim")]
    pub identity_claim: String,
    /// Prefix added to the identity (default `oidc:`), so federated names cannot
    /// collide with Gatehouse-issued agent names.
    #[serde(default = "default_identity_prefix")]
    pub identity_prefix: String,
    /// Claim naming the person the agent acts for (e.g. `act.sub`).
    #[serde(default)]
    pub on_behalf_of_claim: Option<String>,
    /// Claim naming the role (its value must be a key of `[roles]`).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Allowed clock skew.
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub leeway: Duration,
}

fn default_jwks_cache() -> Duration {
    Duration::from_secs(600)
}
fn default_identity_claim() -> String {
    "sub".into()
}
fn default_identity_prefix() -> String {
    "oidc:".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

/// `[roles.NAME]`: what a federated role may reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Targets the role may reach (empty: none).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Protocols the role may use (empty: any protocol of the allowed targets).
    #[serde(default)]
    pub protocols: Vec<Protocol>,
}

/// `[approvals]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSection {
    /// Hold timeout when a rule does not give one.
    #[serde(default = "default_ttl", deserialize_with = "duration")]
    pub default_timeout: Duration,
    /// Longest time-boxed grant (`approvals approve --for`) a reviewer may give.
    #[serde(default = "default_max_grant", deserialize_with = "duration")]
    pub max_grant: Duration,
    /// Webhook receiving Slack-compatible JSON for every approval request.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Signs each webhook request (HMAC-SHA256 headers) so the receiver can verify it.
    #[serde(default)]
    pub webhook_secret: Option<SecretRef>,
    /// Base URL of the admin API as reviewers reach it (for approve/deny links).
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ApprovalsSection {
    fn default() -> Self {
        Self {
            default_timeout: default_ttl(),
            max_grant: default_max_grant(),
            webhook: None,
            webhook_secret: None,
            public_url: None,
        }
    }
}

fn default_max_grant() -> Duration {
    crate::engine::DEFAULT_MAX_GRANT
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address. HTTPS (`cert`, `key`) is required unless it is a loopback address.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// A client must send each request's headers within this time, and then its body
    /// within this time again; a connection that does not is closed (408 for a slow
    /// body).
    #[serde(default = "default_admin_read_timeout", deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// Connections served at once (TLS handshakes included); a connection beyond them
    /// is closed at once.
    #[serde(default = "default_admin_max_connections")]
    pub max_connections: usize,
    /// Largest request body, in bytes; a larger one is answered 413 before any
    /// handler runs.
    #[serde(default = "default_admin_max_request_bytes")]
    pub max_request_bytes: usize,
    /// API users: reviewers and admins.
    #[serde(default, rename = "user")]
    pub users: Vec<AdminUser>,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}
fn default_admin_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_admin_max_connections() -> usize {
    64
}
fn default_admin_max_request_bytes() -> usize {
    64 * 1024
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            cert: None,
            key: None,
            read_timeout: default_admin_read_timeout(),
            max_connections: default_admin_max_connections(),
            max_request_bytes: default_admin_max_request_bytes(),
            users: Vec::new(),
        }
    }
}

/// `[[admin.user]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// Reviewer identity recorded in approval events (e.g. `bob@example.com`).
    pub name: String,
    /// `reviewer` (approvals) or `admin` (everything).
    pub role: AdminRole,
    /// Reviewer groups (`require approval from "sre-oncall"`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's API bearer token.
    pub token: SecretRef,
}

/// Admin API roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// May list, approve and deny approvals in their groups.
    Reviewer,
    /// Everything, including tokens and sessions.
    Admin,
}

/// `[listen]`: one listener per protocol; the agent's token names the target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// PostgreSQL proxy address.
    #[serde(default)]
    pub postgres: Option<SocketAddr>,
    /// SSH proxy address.
    #[serde(default)]
    pub ssh: Option<SocketAddr>,
    /// Kubernetes API proxy address (HTTPS).
    #[serde(default)]
    pub kubernetes: Option<SocketAddr>,
    /// Certificate chain (PEM) of the Kubernetes proxy's HTTPS front. When absent, a
    /// self-signed certificate is generated under `<data_dir>/kubernetes/` on first
    /// start; give it to kubectl with `gatehouse token issue --kubeconfig FILE --ca
    /// <data_dir>/kubernetes/cert.pem`.
    #[serde(default)]
    pub kubernetes_cert: Option<PathBuf>,
    /// Private key (PEM) of `kubernetes_cert`.
    #[serde(default)]
    pub kubernetes_key: Option<PathBuf>,
}

/// `[[target]]`: a protected upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name agents' tokens are bound to.
    pub name: String,
    /// `postgres`, `ssh` or `kubernetes`.
    pub protocol: Protocol,
    /// `host:port` (Postgres, SSH) or `https://host:port` (Kubernetes).
    pub upstream: String,
    /// Other names and addresses of the upstream host (`["db-1", "10.0.0.5"]`):
    /// chains that read any of them and then reach this target match.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Upstream login: Postgres role or SSH user.
    #[serde(default)]
    pub user: Option<String>,
    /// Postgres database.
    #[serde(default)]
    pub database: Option<String>,
    /// Postgres password (SCRAM to the server).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// SSH private key (OpenSSH format) Gatehouse logs in with.
    #[serde(default)]
    pub key: Option<SecretRef>,
    /// Pinned upstream SSH host key (`ssh-ed25519 AAAA...`); learned on first use when absent.
    #[serde(default)]
    pub host_key: Option<String>,
    /// Kubernetes bearer token.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Kubernetes client certificate (PEM file).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Kubernetes client key.
    #[serde(default)]
    pub client_key: Option<SecretRef>,
    /// CA to verify the upstream's TLS certificate (Postgres TLS, Kubernetes).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Postgres: connect to the upstream with TLS.
    #[serde(default)]
    pub tls: bool,
    /// Kubernetes: how long the API server may take to answer a request with its
    /// response headers before the client gets a 504 `Status` (default 60s). Streams
    /// (watch, `logs -f`, exec) are not cut by it once their headers arrived.
    #[serde(default, deserialize_with = "opt_duration")]
    pub response_timeout: Option<Duration>,
    /// SSH: the host runs `gatehouse-guard` as the login user's `ForceCommand` (ADR
    /// 0023): every exec and outbound connect of every process of a session is asked
    /// back through the session's own connection and judged before it proceeds.
    #[serde(default)]
    pub guard: bool,
    /// SSH guard: directory on the host where sshd binds the per-connection socket
    /// the guard asks on (default `/tmp`); it must exist and be writable by `user`.
    #[serde(default)]
    pub guard_socket_dir: Option<String>,
    /// SSH guard: most processes and threads a guarded session may have at once
    /// (default 1024); a fork beyond it ends the forking process and its child.
    #[serde(default)]
    pub guard_max_tasks: Option<usize>,
}

/// The Kubernetes API server's own limit on a request that is not long-running.
pub const DEFAULT_KUBERNETES_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

impl Target {
    /// Kubernetes: how long the API server may take to send response headers.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
            .unwrap_or(DEFAULT_KUBERNETES_RESPONSE_TIMEOUT)
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// TOML syntax or schema error (with line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The rendered error.
        message: String,
    },
    /// A semantic problem.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Parses a config file; relative paths are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        if let Some(base) = path.parent() {
            config.resolve_paths(base);
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no path resolution, no validation).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        self.policy.files.iter_mut().for_each(fix);
        if let Some(p) = &mut self.tokens.key_file {
            fix(p);
        }
        if let Some(p) = &mut self.shipping.parquet.dir {
            fix(p);
        }
        for p in [&mut self.ssh.host_key_file, &mut self.ssh.known_hosts_file]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        for o in &mut self.oidc {
            if let Some(p) = &mut o.jwks_file {
                fix(p);
            }
        }
        for p in [
            &mut self.admin.cert,
            &mut self.admin.key,
            &mut self.listen.kubernetes_cert,
            &mut self.listen.kubernetes_key,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for t in &mut self.targets {
            for p in [&mut t.ca, &mut t.client_cert].into_iter().flatten() {
                fix(p);
            }
            for s in [&mut t.password, &mut t.key, &mut t.token, &mut t.client_key]
                .into_iter()
                .flatten()
            {
                if let SecretRef::File(p) = s {
                    fix(p);
                }
            }
        }
    }

    /// Checks cross-field rules; returns every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.cluster.enabled {
            if self.shipping.kafka.is_none() {
                problems.push("`[cluster]` needs `[shipping.kafka]`: the gateways share their events through its events topic".to_owned());
            }
            if self.gateway_id.is_none() {
                problems.push("`[cluster]` needs `gateway_id`, different on every gateway: a gateway skips its own events by it".to_owned());
            }
        }
        if let Some(url) = &self.shipping.parquet.store {
            let bucket = url
                .strip_prefix("s3://")
                .map(|r| r.split('/').next().unwrap_or(""));
            if bucket.is_none_or(str::is_empty) {
                problems.push(format!(
                    "shipping.parquet.store: `{url}` is not `s3://BUCKET[/PREFIX]`"
                ));
            }
        }
        self.log
            .durability()
            .err()
            .into_iter()
            .for_each(|e| problems.push(e.to_string()));
        let mut names = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !names.insert(t.name.as_str()) {
                problems.push(format!("target `{}` is defined twice", t.name));
            }
            match t.protocol {
                Protocol::Postgres if t.user.is_none() => problems.push(format!("target `{}`: postgres targets need `user`", t.name)),
                Protocol::Ssh if t.user.is_none() || t.key.is_none() => {
                    problems.push(format!("target `{}`: ssh targets need `user` and `key`", t.name))
                }
                Protocol::Kubernetes if !t.upstream.starts_with("https://") => {
                    problems.push(format!("target `{}`: kubernetes `upstream` must be an https:// URL", t.name))
                }
                Protocol::Kubernetes if t.token.is_none() && t.client_cert.is_none() => {
                    problems.push(format!("target `{}`: kubernetes targets need `token` or `client_cert` + `client_key`", t.name))
                }
                _ => {}
            }
            for a in &t.aliases {
                if gatehouse_events::host::normalize(a).is_none() {
                    problems.push(format!(
                        "target `{}`: alias `{a}` is not a host name or address",
                        t.name
                    ));
                }
            }
            match t.response_timeout {
                Some(_) if t.protocol != Protocol::Kubernetes => problems.push(format!(
                    "target `{}`: `response_timeout` applies to kubernetes targets only",
                    t.name
                )),
                Some(d) if d.is_zero() => problems.push(format!(
                    "target `{}`: `response_timeout` must be longer than `0s`",
                    t.name
                )),
                _ => {}
            }
            let guard_keys = t.guard || t.guard_socket_dir.is_some() || t.guard_max_tasks.is_some();
            if guard_keys && t.protocol != Protocol::Ssh {
                problems.push(format!(
                    "target `{}`: `guard`, `guard_socket_dir` and `guard_max_tasks` apply to ssh targets only",
                    t.name
                ));
            }
            if let Some(d) = &t.guard_socket_dir
                && (!d.starts_with('/') || d.contains(char::is_whitespace))
            {
                problems.push(format!(
                    "target `{}`: `guard_socket_dir` must be an absolute path without spaces",
                    t.name
                ));
            }
            if t.guard_max_tasks == Some(0) {
                problems.push(format!(
                    "target `{}`: `guard_max_tasks` must be at least 1",
                    t.name
                ));
            }
        }
        if self.postgres.busy_poll > MAX_BUSY_POLL {
            problems.push(format!(
                "postgres.busy_poll = `{}` is longer than the most allowed, `1ms` (a spinning session holds a CPU)",
                humantime::format_duration(self.postgres.busy_poll)
            ));
        }
        if self.postgres.max_statements == 0 {
            problems.push("postgres.max_statements must be at least 1".into());
        }
        if self.postgres.connect_timeout.is_zero() {
            problems.push("postgres.connect_timeout must be longer than `0s`".into());
        }
        for k in &self.ssh.agent_keys {
            match self.target(&k.target) {
                Some(t) if t.protocol == Protocol::Ssh => {}
                _ => problems.push(format!(
                    "ssh.agent_key `{}`: `{}` is not an ssh target",
                    k.identity, k.target
                )),
            }
        }
        let mut canonical_roles = BTreeMap::new();
        for name in self.roles.keys() {
            if let Some(other) =
                canonical_roles.insert(crate::identity::normalize(name).into_owned(), name)
            {
                problems.push(format!(
                    "roles `{other}` and `{name}` are one role name (names compare without case or width); rename one"
                ));
            }
        }
        for (name, role) in &self.roles {
            for t in &role.targets {
                if !names.contains(t.as_str()) {
                    problems.push(format!("role `{name}` names unknown target `{t}`"));
                }
            }
        }
        for o in &self.oidc {
            if o.jwks_file.is_none() == o.jwks_url.is_none() {
                problems.push(format!(
                    "oidc `{}`: give exactly one of `jwks_file` and `jwks_url`",
                    o.issuer
                ));
            }
        }
        if self.listen.kubernetes_cert.is_some() != self.listen.kubernetes_key.is_some() {
            problems.push(
                "listen: give both `kubernetes_cert` and `kubernetes_key`, or neither (a self-signed certificate is generated)".into(),
            );
        }
        let admin_loopback = self.admin.listen.ip().is_loopback();
        if !admin_loopback && (self.admin.cert.is_none() || self.admin.key.is_none()) {
            problems.push(format!(
                "admin.listen `{}` is not loopback: set admin.cert and admin.key (HTTPS)",
                self.admin.listen
            ));
        }
        if self.resolver.timeout.is_zero() {
            problems.push("resolver.timeout must be longer than `0s`".into());
        }
        if self.admin.read_timeout.is_zero() {
            problems.push("admin.read_timeout must be longer than `0s`".into());
        }
        if self.admin.max_connections == 0 {
            problems.push("admin.max_connections must be at least 1".into());
        }
        if self.admin.max_request_bytes == 0 {
            problems.push("admin.max_request_bytes must be at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.join("\n")))
        }
    }

    /// Warnings that do not stop the gateway (inline secrets).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            for (what, s) in [
                ("password", &t.password),
                ("key", &t.key),
                ("token", &t.token),
                ("client_key", &t.client_key),
            ] {
                if s.as_ref().is_some_and(SecretRef::is_inline) {
                    out.push(format!(
                        "target `{}`: `{what}` is written inline in the config file; use {{ env = \"...\" }} or {{ file = \"...\" }} so it cannot be committed by mistake",
                        t.name
                    ));
                }
            }
        }
        if self
            .approvals
            .webhook_secret
            .as_ref()
            .is_some_and(SecretRef::is_inline)
        {
            out.push("approvals: `webhook_secret` is written inline in the config file; use { env = \"...\" } or { file = \"...\" } so it cannot be committed by mistake".into());
        }
        for u in &self.admin.users {
            if u.token.is_inline() {
                out.push(format!(
                    "admin user `{}`: token is written inline in the config file",
                    u.name
                ));
            }
        }
        out
    }

    /// The target named `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The gateway id (config, else host name, else `gatehouse`).
    pub fn gateway_id(&self) -> String {
        self.gateway_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "gatehouse".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
gateway_id = "gw-test"
data_dir = "/var/lib/gatehouse"

[log]
durability = "strict"
retention_age = "30d"

[shipping.kafka]
brokers = "127.0.0.1:9092"

[policy]
files = ["starter.rules"]

[tokens]
default_ttl = "10m"

[[oidc]]
issuer = "https://idp.example.com"
audiences = ["gatehouse"]
jwks_file = "jwks.json"
role_claim = "role"

[roles.deployer]
targets = ["prod-db"]
protocols = ["postgres"]

[approvals]
webhook = "http://127.0.0.1:9000/hook"

[[admin.user]]
name = "bob@example.com"
role = "reviewer"
groups = ["sre-oncall"]
token = { env = "BOB_TOKEN" }

[listen]
postgres = "127.0.0.1:6432"

[[target]]
name = "prod-db"
protocol = "postgres"
upstream = "127.0.0.1:5432"
user = "gatehouse"
database = "app"
password = { env = "PROD_DB_PASSWORD" }
"#;

    #[test]
    fn full_example_parses_and_validates() {
        let c = Config::parse(FULL).unwrap();
        c.validate().unwrap();
        assert_eq!(c.log.durability().unwrap(), Durability::Strict);
        assert_eq!(c.tokens.default_ttl, Duration::from_secs(600));
        assert_eq!(c.target("prod-db").unwrap().protocol, Protocol::Postgres);
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let e = Config::parse("[log]\ndurabilty = \"strict\"\n").unwrap_err();
        assert!(e.contains("durabilty") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        let e = Config::parse("[tokens]\ndefault_ttl = \"fifteen\"\n").unwrap_err();
        assert!(e.contains("is not a duration"), "{e}");
    }

    #[test]
    fn inline_secrets_warn_and_never_echo() {
        let c = Config::parse(
            "[[target]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:5432\"\nuser = \"u\"\npassword = { value = \"hunter2\" }\n",
        )
        .unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert!(!w[0].contains("hunter2") && !format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_shared_audit_store_must_name_an_s3_bucket() {
        for bad in ["/srv/audit", "s3://", "s3:///prefix", "gs://b/p"] {
            let c = Config::parse(&format!("[shipping.parquet]\nstore = \"{bad}\"\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("is not `s3://BUCKET[/PREFIX]`"), "{bad}: {e}");
        }
        let c = Config::parse(
            "[shipping.parquet]\nstore = \"s3://audit/gw\"\n\
             store_options = { endpoint = \"http://127.0.0.1:9000\" }\n\
             store_secret_options = { secret_access_key = { env = \"S3_SECRET\" } }\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.shipping.parquet.store.as_deref(), Some("s3://audit/gw"));
    }

    #[test]
    fn listener_and_upstream_bounds_are_checked() {
        let c = Config::parse(
            "[admin]\nread_timeout = \"0s\"\nmax_connections = 0\nmax_request_bytes = 0\n\
             [[target]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"x:5432\"\nuser = \"u\"\nresponse_timeout = \"5s\"\n\
             [[target]]\nname = \"k\"\nprotocol = \"kubernetes\"\nupstream = \"https://k\"\ntoken = { env = \"T\" }\nresponse_timeout = \"0s\"\nguard = true\n\
             [[target]]\nname = \"h\"\nprotocol = \"ssh\"\nupstream = \"h:22\"\nuser = \"u\"\nkey = { env = \"K\" }\nguard = true\nguard_socket_dir = \"tmp\"\nguard_max_tasks = 0\n\
             [roles.Deployer]\n[roles.deployer]\n[cluster]\nenabled = true\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        for want in [
            "`[cluster]` needs `[shipping.kafka]`",
            "`[cluster]` needs `gateway_id`, different on every gateway",
            "admin.read_timeout must be longer than `0s`",
            "admin.max_connections must be at least 1",
            "admin.max_request_bytes must be at least 1",
            "target `db`: `response_timeout` applies to kubernetes targets only",
            "target `k`: `response_timeout` must be longer than `0s`",
            "target `k`: `guard`, `guard_socket_dir` and `guard_max_tasks` apply to ssh targets only",
            "target `h`: `guard_socket_dir` must be an absolute path without spaces",
            "target `h`: `guard_max_tasks` must be at least 1",
            "roles `Deployer` and `deployer` are one role name",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
        let d = Config::parse("").unwrap();
        assert_eq!(d.admin.read_timeout, Duration::from_secs(10));
        assert_eq!(d.admin.max_connections, 64);
        assert_eq!(d.admin.max_request_bytes, 65536);
    }

    #[test]
    fn validation_reports_every_problem() {
        let c = Config::parse(
            "[[target]]\nname = \"a\"\nprotocol = \"ssh\"\nupstream = \"x:22\"\n[[target]]\nname = \"a\"\nprotocol = \"kubernetes\"\nupstream = \"http://k\"\n[roles.r]\ntargets = [\"nope\"]\n[postgres]\nbusy_poll = \"5ms\"\nmax_statements = 0\nconnect_timeout = \"0s\"\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        for want in [
            "defined twice",
            "ssh targets need",
            "https:// URL",
            "unknown target `nope`",
            "postgres.busy_poll = `5ms` is longer than the most allowed, `1ms`",
            "postgres.max_statements must be at least 1",
            "postgres.connect_timeout must be longer than `0s`",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
    }
}
