use serde::{Deserialize, Serialize};

/// A client session was authenticated and connected upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionOpened {
    /// Client address (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The login name the client presented (Postgres user, SSH user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// How the client authenticated (`scram-sha-256`, `password`, `publickey`, `bearer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// Upstream host (name or address) the session was connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_host: Option<String>,
    /// Client application name, when the protocol tells it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_application: Option<String>,
}

/// A client session ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionClosed {
    /// Why: `client_closed`, `upstream_closed`, `revoked`, `protocol_error`, ...
    pub reason: String,
    /// Session length in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A client failed to authenticate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthFailed {
    /// Client address (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The login name the client presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Why the credential was refused (`expired`, `bad_signature`, `revoked`, `wrong_target`, ...).
    pub reason: String,
}

/// Direction of recorded session bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataDirection {
    /// From the client towards the upstream.
    #[default]
    Input,
    /// From the upstream to the client (stdout for SSH).
    Output,
    /// Standard error (SSH).
    Error,
}

/// Bytes that crossed a session, recorded for replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionData {
    /// Channel number inside the session (SSH), 0 otherwise.
    pub channel: u32,
    /// Which way the bytes went.
    pub direction: DataDirection,
    /// Microseconds since the session opened.
    pub elapsed_us: u64,
    /// The bytes, as UTF-8 when they are valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes, base64 (standard alphabet), when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}
