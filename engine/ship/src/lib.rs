//! Shippers.
