//! The Gatehouse engine: the durable event log every state is folded from, policy
//! decisions (the rules language bound to the event schema), approvals and identity.

pub mod log;
pub mod policy;
