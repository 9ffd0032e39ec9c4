use serde::{Deserialize, Serialize};

use super::{K8sRequest, PgStatement, SshRequest};

/// A command arrived from a client and was parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestObserved {
    /// The command as the client sent it: SQL text, a command line, `METHOD path`.
    /// Long commands are truncated; the parsed fields are computed from the whole.
    pub command: String,
    /// The parsed, protocol-specific fields.
    pub detail: RequestDetail,
    /// Why, as the requester stated it (`SET gatehouse.reason`, `GATEHOUSE_REASON`
    /// over SSH, the `X-Gatehouse-Reason` header), shown to reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Protocol-specific fields of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum RequestDetail {
    /// One SQL statement.
    Postgres(PgStatement),
    /// An SSH channel request or shell line.
    Ssh(SshRequest),
    /// A Kubernetes API request.
    Kubernetes(K8sRequest),
}

crate::tagged::tagged_deserialize!(RequestDetail, "protocol", {
    "postgres" => Postgres(PgStatement),
    "ssh" => Ssh(SshRequest),
    "kubernetes" => Kubernetes(K8sRequest),
});

impl RequestDetail {
    /// The protocol-level action: statement kind, SSH request kind or Kubernetes verb.
    pub fn action(&self) -> &str {
        match self {
            RequestDetail::Postgres(p) => p.kind.as_str(),
            RequestDetail::Ssh(s) => s.kind.as_str(),
            RequestDetail::Kubernetes(k) => &k.verb,
        }
    }
}
