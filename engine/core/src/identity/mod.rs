//! Who is asking: Gatehouse-issued agent tokens and federated (OIDC) JWTs.
//!
//! Gatehouse tokens are EdDSA JWTs signed by the gateway's key, bound to one target
//! and its protocol, short-lived, and revocable by id. OIDC JWTs are verified against
//! a JWKS (RS256, ES256 or EdDSA), with issuer, audience and expiry checked; configured
//! claims map to the identity, the person the agent acts for, and a role that limits
//! which targets and protocols the token reaches.

mod keys;
mod name;
mod oidc;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use gatehouse_events::payload::CredentialIssued;
use gatehouse_events::{Identity, Protocol};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

pub use keys::TokenKeys;
pub use name::{normalize, same};
pub use oidc::{JwksFetcher, OidcVerifier};

use crate::config::{Config, Role};

/// Issuer of Gatehouse tokens.
pub const ISSUER: &str = "gatehouse";

/// An authenticated agent, bound to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The identity events carry.
    pub identity: Identity,
    /// The target the credential reaches.
    pub target: String,
    /// The target's protocol.
    pub protocol: Protocol,
    /// When the credential expires (sessions are closed then).
    pub expires_at: DateTime<Utc>,
    /// `gatehouse-token` or `oidc`.
    pub method: &'static str,
}

/// Why a credential was refused. `code()` is what events and clients see; the
/// credential itself never appears.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT, or unreadable.
    #[error("the credential is not a valid token")]
    Malformed,
    /// The signature does not verify (forged or tampered).
    #[error("the token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// Issued for another target.
    #[error("the token is for target `{token}`, not `{requested}`")]
    WrongTarget {
        /// Target in the token.
        token: String,
        /// Target asked for.
        requested: String,
    },
    /// The target is not of this protocol.
    #[error("target `{target}` is not a {protocol} target")]
    WrongProtocol {
        /// Target.
        target: String,
        /// Protocol of the proxy.
        protocol: Protocol,
    },
    /// No such target.
    #[error("unknown target `{0}`")]
    UnknownTarget(String),
    /// A federated token must name its target (the token does not).
    #[error("name the target to reach (a federated token is not bound to one)")]
    TargetRequired,
    /// The role may not reach this target or protocol.
    #[error("role `{role}` may not reach target `{target}`")]
    RoleDenied {
        /// Role.
        role: String,
        /// Target.
        target: String,
    },
    /// The token's issuer is not configured.
    #[error("tokens from issuer `{0}` are not accepted")]
    UnknownIssuer(String),
    /// Claims do not check out (audience, missing identity claim, unknown role).
    #[error("the token claims are not acceptable: {0}")]
    Claims(String),
    /// The JWKS could not be obtained (fail closed).
    #[error("the identity provider's keys are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// Short reason code for events (`expired`, `bad_signature`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::Revoked => "revoked",
            AuthError::WrongTarget { .. } => "wrong_target",
            AuthError::WrongProtocol { .. } => "wrong_protocol",
            AuthError::UnknownTarget(_) => "unknown_target",
            AuthError::TargetRequired => "target_required",
            AuthError::RoleDenied { .. } => "role_denied",
            AuthError::UnknownIssuer(_) => "unknown_issuer",
            AuthError::Claims(_) => "bad_claims",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Setting up authentication failed (bad key file, bad JWKS file).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The signing key.
    #[error("token key `{path}`: {message}")]
    Key {
        /// File.
        path: PathBuf,
        /// Problem.
        message: String,
    },
    /// An OIDC provider.
    #[error("oidc `{issuer}`: {message}")]
    Oidc {
        /// Issuer.
        issuer: String,
        /// Problem.
        message: String,
    },
}

/// Claims of a Gatehouse token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    tgt: String,
    proto: Protocol,
    jti: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    obo: Option<String>,
}

/// A request to issue a token.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Agent identity (`deploy-bot`; issued and recorded in canonical form, see
    /// [`normalize`]).
    pub agent: String,
    /// Target name.
    pub target: String,
    /// Lifetime.
    pub ttl: Duration,
    /// Person the agent acts for.
    pub on_behalf_of: Option<String>,
    /// Who asked (admin user).
    pub issued_by: Option<String>,
}

/// Verifies and issues credentials.
pub struct Authenticator {
    keys: TokenKeys,
    oidc: Vec<OidcVerifier>,
    roles: BTreeMap<String, Role>,
    targets: BTreeMap<String, Protocol>,
    max_ttl: Duration,
    revoked: RwLock<HashSet<String>>,
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 10];
    // aws-lc's system RNG; failure is not plausible but must not panic.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The unverified `iss` claim of a JWT (to pick the verifier).
fn peek_issuer(token: &str) -> Result<String, AuthError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed)?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let iss: Iss = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    iss.iss.ok_or(AuthError::Malformed)
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => AuthError::Expired,
        K::InvalidSignature | K::InvalidAlgorithm | K::InvalidKeyFormat => AuthError::BadSignature,
        K::InvalidAudience => AuthError::Claims("audience".into()),
        K::InvalidIssuer => AuthError::Claims("issuer".into()),
        K::ImmatureSignature => AuthError::Claims("not valid yet".into()),
        K::MissingRequiredClaim(c) => AuthError::Claims(format!("missing `{c}`")),
        _ => AuthError::Malformed,
    }
}

impl Authenticator {
    /// Builds the authenticator from the configuration (creating the key on first run).
    pub fn from_config(
        config: &Config,
        fetcher: Option<JwksFetcher>,
    ) -> Result<Self, AuthSetupError> {
        let key_file = config
            .tokens
            .key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("keys/token.ed25519"));
        let keys = TokenKeys::load_or_create(&key_file)?;
        let oidc = config
            .oidc
            .iter()
            .map(|p| OidcVerifier::new(p.clone(), fetcher.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            keys,
            oidc,
            // Role names compare in canonical form, like the claims naming them.
            roles: config
                .roles
                .iter()
                .map(|(k, v)| (normalize(k).into_owned(), v.clone()))
                .collect(),
            targets: config
                .targets
                .iter()
                .map(|t| (t.name.clone(), t.protocol))
                .collect(),
            max_ttl: config.tokens.max_ttl,
            revoked: RwLock::new(HashSet::new()),
        })
    }

    /// An authenticator with explicit parts (tests, tools).
    pub fn new(keys: TokenKeys, targets: BTreeMap<String, Protocol>) -> Self {
        Self {
            keys,
            oidc: Vec::new(),
            roles: BTreeMap::new(),
            targets,
            max_ttl: Duration::from_secs(24 * 3600),
            revoked: RwLock::new(HashSet::new()),
        }
    }

    /// Issues a signed token. Returns it with the event payload to log (which never
    /// contains the token).
    pub fn issue(&self, req: &IssueRequest) -> Result<(String, CredentialIssued), String> {
        let protocol = *self
            .targets
            .get(&req.target)
            .ok_or_else(|| format!("unknown target `{}`", req.target))?;
        if req.ttl > self.max_ttl {
            return Err(format!(
                "ttl {} exceeds the maximum of {}",
                humantime::format_duration(req.ttl),
                humantime::format_duration(self.max_ttl)
            ));
        }
        // Names are issued, and so recorded, in their one canonical form.
        let agent = normalize(&req.agent).into_owned();
        if agent.is_empty() || agent.chars().any(|c| c.is_control() || c == '+') {
            return Err(format!(
                "`{}` is not a usable agent name (no `+`, no control characters)",
                req.agent
            ));
        }
        let on_behalf_of = req
            .on_behalf_of
            .as_deref()
            .map(|o| normalize(o).into_owned())
            .filter(|o| !o.is_empty());
        let issued_by = req.issued_by.as_deref().map(|b| normalize(b).into_owned());
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(req.ttl).map_err(|e| e.to_string())?;
        let claims = Claims {
            iss: ISSUER.into(),
            sub: agent.clone(),
            tgt: req.target.clone(),
            proto: protocol,
            jti: random_id("tok_"),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            obo: on_behalf_of.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.keys.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.keys.encoding)
            .map_err(|e| e.to_string())?;
        let event = CredentialIssued {
            credential_id: claims.jti,
            subject: agent,
            target: req.target.clone(),
            protocol,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at),
            on_behalf_of,
            issued_by,
        };
        Ok((token, event))
    }

    /// Marks a credential id revoked (the engine folds `CredentialRevoked` events here).
    pub fn revoke(&self, credential_id: &str) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(credential_id.to_owned());
    }

    /// True when revoked.
    pub fn is_revoked(&self, credential_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(credential_id)
    }

    /// Verifies a credential presented to the `protocol` proxy. `requested` is the
    /// target the client named, if it named one.
    pub async fn verify(
        &self,
        credential: &str,
        protocol: Protocol,
        requested: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let issuer = peek_issuer(credential)?;
        if issuer == ISSUER {
            return self.verify_gatehouse(credential, protocol, requested);
        }
        let verifier = self
            .oidc
            .iter()
            .find(|o| o.issuer() == issuer)
            .ok_or(AuthError::UnknownIssuer(issuer))?;
        let claims = verifier.verify(credential).await?;
        let target = requested.ok_or(AuthError::TargetRequired)?;
        let target_protocol = *self
            .targets
            .get(target)
            .ok_or_else(|| AuthError::UnknownTarget(target.into()))?;
        if target_protocol != protocol {
            return Err(AuthError::WrongProtocol {
                target: target.into(),
                protocol,
            });
        }
        let role_name = claims
            .role
            .as_deref()
            .map(|r| normalize(r).into_owned())
            .ok_or_else(|| AuthError::Claims("no role claim".into()))?;
        let role = self
            .roles
            .get(&role_name)
            .ok_or_else(|| AuthError::Claims(format!("unknown role `{role_name}`")))?;
        let denied = || AuthError::RoleDenied {
            role: role_name.clone(),
            target: target.into(),
        };
        if !role.targets.iter().any(|t| t == target)
            || (!role.protocols.is_empty() && !role.protocols.contains(&protocol))
        {
            return Err(denied());
        }
        if let Some(id) = &claims.credential_id
            && self.is_revoked(id)
        {
            return Err(AuthError::Revoked);
        }
        Ok(Principal {
            identity: Identity {
                name: normalize(&claims.identity).into_owned(),
                on_behalf_of: claims
                    .on_behalf_of
                    .as_deref()
                    .map(|o| normalize(o).into_owned()),
                role: Some(role_name),
                credential_id: claims.credential_id,
            },
            target: target.into(),
            protocol,
            expires_at: claims.expires_at,
            method: "oidc",
        })
    }

    fn verify_gatehouse(
        &self,
        token: &str,
        protocol: Protocol,
        requested: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[ISSUER]);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &v)
            .map_err(|e| map_jwt_error(&e))?;
        let c = data.claims;
        if self.is_revoked(&c.jti) {
            return Err(AuthError::Revoked);
        }
        if let Some(req) = requested
            && req != c.tgt
        {
            return Err(AuthError::WrongTarget {
                token: c.tgt,
                requested: req.into(),
            });
        }
        match self.targets.get(&c.tgt) {
            None => return Err(AuthError::UnknownTarget(c.tgt)),
            Some(p) if *p != protocol || c.proto != protocol => {
                return Err(AuthError::WrongProtocol {
                    target: c.tgt,
                    protocol,
                });
            }
            Some(_) => {}
        }
        Ok(Principal {
            // Tokens issued before names were normalised may carry another spelling.
            identity: Identity {
                name: normalize(&c.sub).into_owned(),
                on_behalf_of: c.obo.as_deref().map(|o| normalize(o).into_owned()),
                role: None,
                credential_id: Some(c.jti),
            },
            target: c.tgt,
            protocol,
            expires_at: DateTime::from_timestamp(c.exp, 0).unwrap_or_default(),
            method: "gatehouse-token",
        })
    }
}
