//! The Gatehouse engine: the durable event log every state is folded from, and (in
//! later modules) policy decisions, approvals and identity.

pub mod log;
