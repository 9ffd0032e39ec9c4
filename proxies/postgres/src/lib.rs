//! The Gatehouse PostgreSQL proxy.
//!
//! A client (`psql`, `pgbench`, a driver, an ORM) connects as it would to PostgreSQL,
//! with a Gatehouse token as its password. Every statement is parsed and classified
//! ([`classify`]), judged by the engine, enforced (block, mask, hold for approval) and
//! recorded before it is forwarded to the upstream server, which Gatehouse reaches with
//! the credential it holds.
//!
//! Both sockets of a session are served by one task; upstream bytes are passed through
//! untouched except where a mask rewrites a data row.

#![warn(missing_docs)]

pub mod classify;
pub mod wire;
