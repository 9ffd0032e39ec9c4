use serde::{Deserialize, Serialize};

use crate::EventId;

/// How a request ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// The upstream completed it.
    #[default]
    Ok,
    /// The upstream reported an error.
    Error,
    /// Gatehouse refused it (block, denied or expired approval).
    Refused,
}

impl ResultStatus {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Ok => "ok",
            ResultStatus::Error => "error",
            ResultStatus::Refused => "refused",
        }
    }
}

/// Values a sequence rule asked to keep from a result (bounded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capture {
    /// Capture name (`hosts`).
    pub name: String,
    /// The source field or column (`hostname`).
    pub source: String,
    /// Values kept, in order of appearance, deduplicated, bounded.
    pub values: Vec<String>,
    /// True when the bound cut values off.
    pub truncated: bool,
    /// Host keys of the values that are host names or addresses
    /// ([`crate::host::value_keys`]), resolved when the result was recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// The upstream answered a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultObserved {
    /// The request this result belongs to.
    pub request: Option<EventId>,
    /// How it ended.
    pub status: ResultStatus,
    /// Rows returned or affected (Postgres), objects listed (Kubernetes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Error code: SQLSTATE, HTTP status or exit status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Time from forwarding to completion, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Number of values masked.
    pub masked: u64,
    /// Values captured for sequence rules.
    pub captures: Vec<Capture>,
    /// A sample of the result after masking (first rows or bytes, up to the cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}
