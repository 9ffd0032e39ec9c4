//! The Gatehouse engine.
pub mod policy;
