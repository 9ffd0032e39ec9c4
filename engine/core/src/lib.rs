//! The Gatehouse engine: the durable event log every state is folded from, policy
//! decisions (the rules language bound to the event schema), approvals, identity, and
//! the [`engine::Engine`] facade the proxies call.

pub mod config;
pub mod engine;
pub mod hosts;
pub mod identity;
pub mod log;
pub mod policy;
pub mod replay;
