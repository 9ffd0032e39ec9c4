use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Protocol;

/// Gatehouse issued an agent credential. The token itself is never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialIssued {
    /// Token id.
    pub credential_id: String,
    /// The identity the token names.
    pub subject: String,
    /// The one target the token is bound to.
    pub target: String,
    /// The protocol of that target.
    pub protocol: Protocol,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Person the agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Who issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
}

/// A credential was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialRevoked {
    /// Token id.
    pub credential_id: String,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
