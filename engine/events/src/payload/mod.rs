//! Event payloads: what happened, per event type.
//!
//! Every payload struct accepts unknown fields on decode and gives new fields a
//! default, so the schema can grow additively.

mod alert;
mod approval;
mod credential;
mod decision;
mod kubernetes;
mod operations;
mod postgres;
mod request;
mod result;
mod session;
mod ssh;

pub use alert::{AlertRaised, Severity};
pub use approval::{
    ApprovalDenied, ApprovalExpired, ApprovalGranted, ApprovalRequested, ApprovalWithdrawn,
    ChainStep, GrantRevoked,
};
pub use credential::{CredentialIssued, CredentialRevoked};
pub use decision::{DecisionMade, Effect};
pub use kubernetes::{K8sRequest, PodSpecSummary};
pub use operations::{LogOutage, ShipperRewound};
pub use postgres::{PgKind, PgStatement};
pub use request::{RequestDetail, RequestObserved};
pub use result::{Capture, ResultObserved, ResultStatus};
pub use session::{AuthFailed, DataDirection, SessionClosed, SessionData, SessionOpened};
pub use ssh::{SshProcess, SshRequest, SshRequestKind};

use serde::Serialize;

/// What an event says happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "requests are the common case; boxing them would add an allocation per event"
)]
pub enum Payload {
    /// A client session was authenticated and connected upstream.
    SessionOpened(SessionOpened),
    /// A client session ended.
    SessionClosed(SessionClosed),
    /// A client failed to authenticate (bad, expired, revoked or misdirected credential).
    AuthFailed(AuthFailed),
    /// A command arrived from a client and was parsed.
    RequestObserved(RequestObserved),
    /// The policy decided what to do with a request.
    DecisionMade(DecisionMade),
    /// The upstream answered a request (or the request failed).
    ResultObserved(ResultObserved),
    /// Raw bytes that crossed a session (recordings for replay).
    SessionData(SessionData),
    /// A request was held for a human reviewer.
    ApprovalRequested(ApprovalRequested),
    /// A reviewer approved a held request.
    ApprovalGranted(ApprovalGranted),
    /// A reviewer denied a held request.
    ApprovalDenied(ApprovalDenied),
    /// A held request reached its deadline without a decision.
    ApprovalExpired(ApprovalExpired),
    /// A reviewer or an admin ended a time-boxed grant before its time.
    GrantRevoked(GrantRevoked),
    /// Gatehouse issued an agent credential.
    CredentialIssued(CredentialIssued),
    /// A credential was revoked.
    CredentialRevoked(CredentialRevoked),
    /// A rule or sequence fired an alert.
    AlertRaised(AlertRaised),
    /// The client of a held request left before a reviewer decided.
    ApprovalWithdrawn(ApprovalWithdrawn),
    /// The event log refused appends for a while and recovered.
    LogOutage(LogOutage),
    /// A shipper's cursor was past the log's end and was moved back.
    ShipperRewound(ShipperRewound),
}

impl Payload {
    /// The `type` tag of this payload.
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::SessionOpened(_) => "session_opened",
            Payload::SessionClosed(_) => "session_closed",
            Payload::AuthFailed(_) => "auth_failed",
            Payload::RequestObserved(_) => "request_observed",
            Payload::DecisionMade(_) => "decision_made",
            Payload::ResultObserved(_) => "result_observed",
            Payload::SessionData(_) => "session_data",
            Payload::ApprovalRequested(_) => "approval_requested",
            Payload::ApprovalGranted(_) => "approval_granted",
            Payload::ApprovalDenied(_) => "approval_denied",
            Payload::ApprovalExpired(_) => "approval_expired",
            Payload::GrantRevoked(_) => "grant_revoked",
            Payload::CredentialIssued(_) => "credential_issued",
            Payload::CredentialRevoked(_) => "credential_revoked",
            Payload::AlertRaised(_) => "alert_raised",
            Payload::ApprovalWithdrawn(_) => "approval_withdrawn",
            Payload::LogOutage(_) => "log_outage",
            Payload::ShipperRewound(_) => "shipper_rewound",
        }
    }

    /// Every `type` tag, in declaration order (the rules' `event.type` values).
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "session_opened",
        "session_closed",
        "auth_failed",
        "request_observed",
        "decision_made",
        "result_observed",
        "session_data",
        "approval_requested",
        "approval_granted",
        "approval_denied",
        "approval_expired",
        "grant_revoked",
        "credential_issued",
        "credential_revoked",
        "alert_raised",
        "approval_withdrawn",
        "log_outage",
        "shipper_rewound",
    ];
}

crate::tagged::tagged_deserialize!(Payload, "type", {
    "session_opened" => SessionOpened(SessionOpened),
    "session_closed" => SessionClosed(SessionClosed),
    "auth_failed" => AuthFailed(AuthFailed),
    "request_observed" => RequestObserved(RequestObserved),
    "decision_made" => DecisionMade(DecisionMade),
    "result_observed" => ResultObserved(ResultObserved),
    "session_data" => SessionData(SessionData),
    "approval_requested" => ApprovalRequested(ApprovalRequested),
    "approval_granted" => ApprovalGranted(ApprovalGranted),
    "approval_denied" => ApprovalDenied(ApprovalDenied),
    "approval_expired" => ApprovalExpired(ApprovalExpired),
    "grant_revoked" => GrantRevoked(GrantRevoked),
    "credential_issued" => CredentialIssued(CredentialIssued),
    "credential_revoked" => CredentialRevoked(CredentialRevoked),
    "alert_raised" => AlertRaised(AlertRaised),
    "approval_withdrawn" => ApprovalWithdrawn(ApprovalWithdrawn),
    "log_outage" => LogOutage(LogOutage),
    "shipper_rewound" => ShipperRewound(ShipperRewound),
});

macro_rules! impl_from {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for Payload {
            fn from(value: $variant) -> Self {
                Payload::$variant(value)
            }
        })*
    };
}

impl_from!(
    SessionOpened,
    SessionClosed,
    AuthFailed,
    RequestObserved,
    DecisionMade,
    ResultObserved,
    SessionData,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalExpired,
    GrantRevoked,
    CredentialIssued,
    CredentialRevoked,
    AlertRaised,
    ApprovalWithdrawn,
    LogOutage,
    ShipperRewound,
);
