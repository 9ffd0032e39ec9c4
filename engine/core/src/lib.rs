//! The Gatehouse engine.
