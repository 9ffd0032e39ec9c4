//! The gateway's own operation: outages of the event log, shipping repairs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The event log refused appends for a while (a failed write or fsync: a full disk,
/// an I/O error) and then recovered. Written as the first record after the outage;
/// every command refused in between was refused for this reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogOutage {
    /// When the first append failed.
    pub started_at: DateTime<Utc>,
    /// When appends succeeded again.
    pub ended_at: DateTime<Utc>,
    /// The error that failed the log.
    pub error: String,
    /// Appends refused while the log was failed (each refused one command or
    /// recorded nothing that was not refused).
    #[serde(default)]
    pub refused_appends: u64,
    /// Recovery attempts that failed before one succeeded.
    #[serde(default)]
    pub failed_attempts: u64,
}

/// A shipper's persisted cursor pointed past the end of the log (the log lost its
/// unsynced tail, e.g. after a power loss, or was restored from a copy), so it was
/// moved back to the log's end. Records the sink received at offsets from `log_end`
/// up to `cursor` are not in the log any more; the offsets are reused by new events
/// (with new event ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipperRewound {
    /// The sink (`parquet`, `kafka`).
    pub sink: String,
    /// The cursor as found.
    pub cursor: u64,
    /// The log's end (next offset) it was moved back to.
    pub log_end: u64,
}
