//! End-to-end tests: the `gatehouse` binary against real servers (a Kafka-compatible
//! broker, PostgreSQL, sshd) started on free loopback ports in temp directories.
//! A missing server fails the test with a message naming `scripts/install-deps`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod admin;
mod architecture;
mod backfill;
mod campaign;
mod cluster;
mod cluster_failover;
mod demo;
mod faults;
mod kubernetes;
mod log_crash;
mod oidc;
mod postgres;
mod serve;
mod shipping;
mod ssh;
mod support;
