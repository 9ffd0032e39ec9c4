//! A gateway with only the SSH proxy (no shippers, no admin API), built from a
//! `gatehouse.toml`: for benchmarks when the full `gatehouse` binary is not built.
//! `cargo run --release -p gatehouse-proxy-ssh --example ssh_gateway -- gatehouse.toml`

#![allow(
    clippy::expect_used,
    reason = "example: a setup failure ends it with a message"
)]

use std::sync::Arc;

use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions};
use gatehouse_core::identity::Authenticator;
use gatehouse_core::log::{EventLog, LogConfig};
use gatehouse_core::policy::{PolicyHandle, PolicyOptions};
use gatehouse_proxy_ssh::{SshProxy, SshProxyOptions};

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: ssh_gateway gatehouse.toml");
    let config = Config::load(std::path::Path::new(&path)).expect("config");
    let mut log_config = LogConfig::new(config.data_dir.join("log"));
    log_config.durability = config.log.durability().expect("durability");
    let log = Arc::new(EventLog::open(log_config).expect("event log"));
    let policy = PolicyHandle::load(&config.policy.files, PolicyOptions::default())
        .map_err(|e| e.render(100))
        .expect("policy");
    let auth = Authenticator::from_config(&config, None).expect("auth");
    let engine =
        Engine::open(EngineOptions::new(config.gateway_id()), log, policy, auth).expect("engine");
    let options = SshProxyOptions::from_config(&config).expect("ssh options");
    let proxy = SshProxy::bind(engine, options).await.expect("bind");
    println!("ready {}", proxy.local_addr().expect("addr"));
    let (_stop, rx) = tokio::sync::watch::channel(false);
    proxy.run(rx).await;
}
