//! The Gatehouse event schema.
//!
//! Every command, decision, approval and alert that crosses Gatehouse is an [`Event`]:
//! an envelope (id, time, schema version, session, identity, target, protocol,
//! gateway) around a typed [`Payload`]. This crate is the one place the schema is
//! defined, together with its three encodings:
//!
//! - the native JSON form (`serde`, written by [`json::write_event`] on the log's hot
//!   path), which is what the event log stores and what frozen fixtures pin down per
//!   schema version;
//! - OCSF 1.x JSON ([`ocsf::to_ocsf`]), what Kafka consumers and SIEMs read;
//! - an Arrow schema and record batches ([`arrow::schema`]), what Parquet files hold.
//!
//! The schema evolves additively: new optional fields and new payload variants only.
//! Readers of version N decode every event written by versions `<= N`.

#![warn(missing_docs)]

pub mod arrow;
mod envelope;
pub mod host;
mod id;
pub mod json;
pub mod ocsf;
pub mod payload;
pub mod synth;
mod tagged;
mod timefmt;

pub use envelope::{Event, EventBuilder, Identity, Protocol};
pub use id::{EventId, ParseIdError};
pub use payload::Payload;

/// Version of the event schema written by this build.
pub const SCHEMA_VERSION: u16 = 1;
