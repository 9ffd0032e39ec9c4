//! Routes and handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use gatehouse_core::config::AdminRole;
use gatehouse_core::engine::{ApprovalError, Reviewer};
use gatehouse_core::identity::IssueRequest;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{AdminState, User};

type AppState = Arc<AdminState>;

/// An API error: status and message, rendered as `{"error": "..."}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

/// The caller, from `Authorization: Bearer ...`.
pub struct Authed(User);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or unknown bearer token".into(),
            )
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let token = value.strip_prefix("Bearer ").ok_or_else(unauthorized)?;
        state
            .user(token.trim())
            .cloned()
            .map(Authed)
            .ok_or_else(unauthorized)
    }
}

fn require_admin(user: &User) -> Result<(), ApiError> {
    if user.role == AdminRole::Admin {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("`{}` is a reviewer; this needs an admin", user.name),
        ))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(crate::health::health))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/v1/whoami", get(whoami))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/events", get(approval_events))
        .route("/v1/approvals/{id}", get(get_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}", delete(revoke_grant))
        .route("/v1/sessions", get(sessions))
        .route("/v1/cluster", get(cluster))
        .route("/v1/tokens", post(issue))
        .route("/v1/tokens/{id}", delete(revoke))
        .with_state(state)
}

async fn whoami(Authed(u): Authed) -> Json<serde_json::Value> {
    Json(json!({ "name": u.name, "role": u.role == AdminRole::Admin, "groups": u.groups }))
}

async fn list_approvals(State(s): State<AppState>, Authed(_): Authed) -> Json<serde_json::Value> {
    Json(json!({ "approvals": s.engine.approvals().list() }))
}

/// `GET /v1/approvals/events`: server-sent events, one `approvals` event with the
/// whole pending list at once and again after every change (a request held, decided,
/// expired or withdrawn on this gateway or, in a cluster, folded from another), so a
/// reviewer's page or script sees new requests without polling.
async fn approval_events(
    State(s): State<AppState>,
    Authed(_): Authed,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    let mut changes = s.engine.approvals().changes();
    changes.borrow_and_update();
    let engine = s.engine.clone();
    let stream = futures_util::stream::unfold(
        (changes, engine, true),
        |(mut changes, engine, first)| async move {
            if !first && changes.changed().await.is_err() {
                return None;
            }
            changes.borrow_and_update();
            let list = json!({ "approvals": engine.approvals().list() });
            let event = axum::response::sse::Event::default()
                .event("approvals")
                .data(list.to_string());
            Some((Ok(event), (changes, engine, false)))
        },
    );
    axum::response::sse::Sse::new(stream).keep_alive(
        axum::response::sse::KeepAlive::new().interval(std::time::Duration::from_secs(15)),
    )
}

async fn list_grants(State(s): State<AppState>, Authed(_): Authed) -> Json<serde_json::Value> {
    Json(json!({ "grants": s.engine.grants() }))
}

async fn get_approval(
    State(s): State<AppState>,
    Authed(_): Authed,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p =
        s.engine.approvals().get(&id).ok_or_else(|| {
            ApiError(StatusCode::NOT_FOUND, format!("no pending approval `{id}`"))
        })?;
    Ok(Json(json!({ "approval": p })))
}

/// Body of `POST /v1/approvals/{id}/approve`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// Time-boxed grant (`30m`, at most `approvals.max_grant`): the same identity,
    /// credential, target and rule are allowed until then.
    #[serde(default, rename = "for")]
    pub valid_for: Option<String>,
}

/// Body of `POST /v1/approvals/{id}/deny`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DenyRequest {
    /// Why (shown to the agent).
    pub reason: String,
}

fn approval_error(e: ApprovalError) -> ApiError {
    let status = match &e {
        ApprovalError::NotFound(_) | ApprovalError::NoGrant(_) => StatusCode::NOT_FOUND,
        ApprovalError::BadDuration(_) | ApprovalError::GrantTooLong { .. } => {
            StatusCode::BAD_REQUEST
        }
        ApprovalError::SelfApproval(_)
        | ApprovalError::IssuedByReviewer(_)
        | ApprovalError::NotInGroup { .. }
        | ApprovalError::MayNotRevoke { .. } => StatusCode::FORBIDDEN,
        ApprovalError::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError(status, e.to_string())
}

fn reviewer(u: &User) -> Reviewer {
    Reviewer {
        name: u.name.clone(),
        groups: u.groups.clone(),
    }
}

async fn approve(
    State(s): State<AppState>,
    Authed(u): Authed,
    Path(id): Path<String>,
    body: Option<Json<ApproveRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let valid_for: Option<Duration> = body
        .valid_for
        .as_deref()
        .map(|d| gatehouse_core::config::parse_duration(d).map_err(bad_request))
        .transpose()?;
    let p = s
        .engine
        .approve(&id, &reviewer(&u), valid_for)
        .await
        .map_err(approval_error)?;
    tracing::info!(message = "Approval granted.", approval = %id, reviewer = %u.name, valid_for = ?valid_for);
    Ok(Json(json!({ "approved": p, "reviewer": u.name })))
}

async fn deny(
    State(s): State<AppState>,
    Authed(u): Authed,
    Path(id): Path<String>,
    Json(body): Json<DenyRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.reason.trim().is_empty() {
        return Err(bad_request("give a reason"));
    }
    let p = s
        .engine
        .deny(&id, &reviewer(&u), &body.reason)
        .await
        .map_err(approval_error)?;
    tracing::info!(message = "Approval denied.", approval = %id, reviewer = %u.name);
    Ok(Json(json!({ "denied": p, "reviewer": u.name })))
}

/// Body of `DELETE /v1/grants/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevokeGrantRequest {
    /// Why (recorded in `grant_revoked`).
    pub reason: String,
}

async fn revoke_grant(
    State(s): State<AppState>,
    Authed(u): Authed,
    Path(id): Path<String>,
    body: Option<Json<RevokeGrantRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reason = body.map(|b| b.0.reason).unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(bad_request("give a reason"));
    }
    let admin = u.role == AdminRole::Admin;
    let g = s
        .engine
        .revoke_grant(&id, &reviewer(&u), admin, &reason)
        .await
        .map_err(approval_error)?;
    tracing::info!(message = "Grant revoked.", approval = %id, by = %u.name);
    Ok(Json(json!({ "revoked": g, "by": u.name })))
}

async fn sessions(
    State(s): State<AppState>,
    Authed(u): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&u)?;
    Ok(Json(json!({ "sessions": s.engine.sessions() })))
}

/// `GET /v1/cluster`: how far this gateway has folded the cluster's events.
async fn cluster(
    State(s): State<AppState>,
    Authed(u): Authed,
) -> Result<Json<gatehouse_core::engine::ClusterStatus>, ApiError> {
    require_admin(&u)?;
    match s.engine.cluster_status().await {
        Some(Ok(status)) => Ok(Json(status)),
        Some(Err(e)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the cluster's broker did not answer: {e}"),
        )),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "this gateway is not in a cluster (`[cluster] enabled = false`)".into(),
        )),
    }
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssueTokenRequest {
    /// Agent identity.
    pub agent: String,
    /// Target name.
    pub target: String,
    /// Lifetime (`15m`; default from `[tokens] default_ttl`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Person the agent acts for.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
}

/// Response of `POST /v1/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token: the agent's password / bearer token. Shown once.
    pub token: String,
    /// Token id (for revocation).
    pub credential_id: String,
    /// Target.
    pub target: String,
    /// Protocol of the target.
    pub protocol: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

async fn issue(
    State(s): State<AppState>,
    Authed(u): Authed,
    Json(body): Json<IssueTokenRequest>,
) -> Result<Json<IssuedToken>, ApiError> {
    require_admin(&u)?;
    let ttl = match &body.ttl {
        Some(t) => gatehouse_core::config::parse_duration(t).map_err(bad_request)?,
        None => s.config.tokens.default_ttl,
    };
    let req = IssueRequest {
        agent: body.agent,
        target: body.target,
        ttl,
        on_behalf_of: body.on_behalf_of,
        issued_by: Some(u.name.clone()),
    };
    let (token, issued) = s.engine.issue_token(&req).await.map_err(bad_request)?;
    Ok(Json(IssuedToken {
        token,
        credential_id: issued.credential_id,
        target: issued.target,
        protocol: issued.protocol.as_str().into(),
        expires_at: issued.expires_at,
    }))
}

/// Body of `DELETE /v1/tokens/{id}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

async fn revoke(
    State(s): State<AppState>,
    Authed(u): Authed,
    Path(id): Path<String>,
    body: Option<Json<RevokeRequest>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&u)?;
    let reason = body.and_then(|b| b.0.reason);
    let closed = s
        .engine
        .revoke_token(&id, Some(&u.name), reason.as_deref())
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(
        json!({ "credential_id": id, "revoked": true, "closed_sessions": closed }),
    ))
}
