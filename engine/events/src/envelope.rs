use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::payload::{K8sRequest, Payload, PgStatement, RequestDetail, SshRequest};
use crate::{EventId, SCHEMA_VERSION};

/// The protocol a session or request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// PostgreSQL wire protocol.
    Postgres,
    /// SSH (exec, shells, sftp, forwarding).
    Ssh,
    /// The Kubernetes API over HTTPS.
    Kubernetes,
}

impl Protocol {
    /// Lowercase name, as used in configs, rules and Parquet partitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Ssh => "ssh",
            Protocol::Kubernetes => "kubernetes",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Protocol::Postgres),
            "ssh" => Some(Protocol::Ssh),
            "kubernetes" => Some(Protocol::Kubernetes),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted: the agent identity a Gatehouse credential (or federated token) names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// The identity name sequences are keyed by, e.g. `agent:deploy-bot`.
    pub name: String,
    /// The person the agent acts for, when the credential says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The role a federated token mapped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Id of the credential (token) used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

impl Identity {
    /// An identity with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            on_behalf_of: None,
            role: None,
            credential_id: None,
        }
    }
}

/// One event: the envelope plus its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique, time-sortable id.
    pub id: EventId,
    /// When the event happened (microsecond precision).
    #[serde(serialize_with = "crate::timefmt::serialize")]
    pub time: DateTime<Utc>,
    /// Schema version this event was written with.
    pub schema_version: u16,
    /// The gateway instance that observed it.
    pub gateway_id: String,
    /// The client session, for events that belong to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Who acted, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The configured target name (e.g. `prod-db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The protocol of the session or request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// What happened.
    pub payload: Payload,
}

impl Event {
    /// Starts an event with a fresh id and the current time.
    pub fn builder(gateway_id: impl Into<String>, payload: impl Into<Payload>) -> EventBuilder {
        EventBuilder {
            event: Event {
                id: EventId::new(),
                time: Utc::now().trunc_subsecs(6),
                schema_version: SCHEMA_VERSION,
                gateway_id: gateway_id.into(),
                session_id: None,
                identity: None,
                target: None,
                protocol: None,
                payload: payload.into(),
            },
        }
    }

    /// Starts an event of a session with a fresh id, the current time and the whole
    /// envelope at once: one construction instead of a chain of builder calls, each
    /// of which moves the event (the per-command path builds three of these).
    pub fn for_session(
        gateway_id: &str,
        session_id: &str,
        identity: &Identity,
        target: &str,
        protocol: Protocol,
        payload: impl Into<Payload>,
    ) -> EventBuilder {
        EventBuilder {
            event: Event {
                id: EventId::new(),
                time: Utc::now().trunc_subsecs(6),
                schema_version: SCHEMA_VERSION,
                gateway_id: gateway_id.to_owned(),
                session_id: Some(session_id.to_owned()),
                identity: Some(identity.clone()),
                target: Some(target.to_owned()),
                protocol: Some(protocol),
                payload: payload.into(),
            },
        }
    }

    /// The event type name, e.g. `request_observed`.
    pub fn event_type(&self) -> &'static str {
        self.payload.type_name()
    }

    /// The identity name, if any.
    pub fn identity_name(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.name.as_str())
    }

    /// The request detail, for `request_observed` events.
    pub fn request(&self) -> Option<&RequestDetail> {
        match &self.payload {
            Payload::RequestObserved(r) => Some(&r.detail),
            _ => None,
        }
    }

    /// The PostgreSQL statement, for Postgres requests.
    pub fn postgres(&self) -> Option<&PgStatement> {
        match self.request() {
            Some(RequestDetail::Postgres(p)) => Some(p),
            _ => None,
        }
    }

    /// The SSH request, for SSH requests.
    pub fn ssh(&self) -> Option<&SshRequest> {
        match self.request() {
            Some(RequestDetail::Ssh(s)) => Some(s),
            _ => None,
        }
    }

    /// The Kubernetes request, for Kubernetes requests.
    pub fn kubernetes(&self) -> Option<&K8sRequest> {
        match self.request() {
            Some(RequestDetail::Kubernetes(k)) => Some(k),
            _ => None,
        }
    }

    /// Encodes the event in its native JSON form (what the event log stores).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        crate::json::write_event(&mut out, self)?;
        Ok(out)
    }

    /// Decodes an event from its native JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Fills in an [`Event`] envelope.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: Event,
}

impl EventBuilder {
    /// Sets the session id.
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.event.session_id = Some(session_id.into());
        self
    }

    /// Sets the identity.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.event.identity = Some(identity);
        self
    }

    /// Sets the target name.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.event.target = Some(target.into());
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.event.protocol = Some(protocol);
        self
    }

    /// Overrides the time (replays, generators, fixtures).
    pub fn time(mut self, time: DateTime<Utc>) -> Self {
        self.event.time = time.trunc_subsecs(6);
        self
    }

    /// Overrides the id (fixtures).
    pub fn id(mut self, id: EventId) -> Self {
        self.event.id = id;
        self
    }

    /// Finishes the event.
    pub fn build(self) -> Event {
        self.event
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]
mod tests {
    use super::*;
    use crate::payload::ResultObserved;

    #[test]
    fn for_session_fills_the_envelope_the_builder_chain_does() {
        let identity = Identity {
            name: "agent-7".into(),
            on_behalf_of: Some("alice@example.com".into()),
            role: Some("sre".into()),
            credential_id: Some("tok_1".into()),
        };
        let payload = ResultObserved {
            rows: Some(3),
            ..ResultObserved::default()
        };
        let direct = Event::for_session(
            "gw-1",
            "pg-1",
            &identity,
            "prod-db",
            Protocol::Postgres,
            payload.clone(),
        )
        .build();
        let chained = Event::builder("gw-1", payload)
            .session("pg-1")
            .identity(identity)
            .target("prod-db")
            .protocol(Protocol::Postgres)
            .id(direct.id)
            .time(direct.time)
            .build();
        assert_eq!(direct, chained);
        assert_eq!(direct.schema_version, SCHEMA_VERSION);
    }
}
