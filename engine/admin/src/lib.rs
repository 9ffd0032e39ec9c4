//! The admin API: reviewers approve and deny held commands, admins issue and revoke
//! agent tokens and list sessions; `/healthz` and Prometheus `/metrics` for operators.
//!
//! HTTP on a loopback address, HTTPS (rustls) elsewhere — the configuration refuses a
//! non-loopback listener without a certificate. Every `/v1` call needs
//! `Authorization: Bearer <token>` of a configured `[[admin.user]]`; the token
//! decides the user's name (recorded as reviewer), role and groups.

pub mod client;
pub mod health;
mod listener;
mod metrics;
mod routes;
mod tls;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_core::config::{AdminRole, Config, Secret};
use gatehouse_core::engine::Engine;
use gatehouse_core::identity::normalize;
use tokio::sync::watch;

pub use listener::Limits;
pub use routes::{ApproveRequest, DenyRequest, IssueTokenRequest, IssuedToken, RevokeRequest};

/// An authenticated admin API user.
#[derive(Debug, Clone)]
pub struct User {
    /// Name (reviewer identity in approval events), in canonical form.
    pub name: String,
    /// Role.
    pub role: AdminRole,
    /// Reviewer groups.
    pub groups: Vec<String>,
    token: Secret,
}

/// Shared state of the API.
pub struct AdminState {
    engine: Arc<Engine>,
    config: Arc<Config>,
    users: Vec<User>,
    upstreams: Arc<health::Upstreams>,
}

/// Admin API errors at startup.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A user's token cannot be read.
    #[error("admin user `{user}`: {message}")]
    User {
        /// User.
        user: String,
        /// Problem.
        message: String,
    },
    /// The listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("admin TLS: {0}")]
    Tls(String),
}

impl AdminState {
    /// Resolves the users' tokens.
    pub fn new(engine: Arc<Engine>, config: Arc<Config>) -> Result<Self, AdminError> {
        let mut users = Vec::new();
        for u in &config.admin.users {
            let token = u.token.resolve().map_err(|e| AdminError::User {
                user: u.name.clone(),
                message: e.to_string(),
            })?;
            // One canonical spelling, as the engine compares and records names.
            users.push(User {
                name: normalize(&u.name).into_owned(),
                role: u.role,
                groups: u.groups.iter().map(|g| normalize(g).into_owned()).collect(),
                token,
            });
        }
        let upstreams = Arc::new(health::Upstreams::new(&config.targets));
        Ok(Self {
            engine,
            config,
            users,
            upstreams,
        })
    }

    /// The user presenting `token` (constant-time comparison).
    pub fn user(&self, token: &str) -> Option<&User> {
        use subtle::ConstantTimeEq;
        self.users
            .iter()
            .find(|u| bool::from(u.token.expose().as_bytes().ct_eq(token.as_bytes())))
    }
}

/// Binds and serves the API until `shutdown`, within the `[admin]` limits; returns
/// the bound address.
pub async fn start(
    engine: Arc<Engine>,
    config: Arc<Config>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, AdminError> {
    let addr = config.admin.listen;
    let tls = match (&config.admin.cert, &config.admin.key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let limits = Limits::from_config(&config.admin);
    let state = Arc::new(AdminState::new(engine, config)?);
    let probes = tokio::spawn(state.upstreams.clone().run());
    let mut stop_probes = shutdown.clone();
    tokio::spawn(async move {
        let _ = stop_probes.wait_for(|s| *s).await;
        probes.abort();
    });
    let app = routes::router(state).layer(axum::middleware::from_fn_with_state(
        limits,
        listener::bound_body,
    ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    tokio::spawn(listener::serve(listener, tls, app, limits, shutdown));
    Ok(bound)
}
