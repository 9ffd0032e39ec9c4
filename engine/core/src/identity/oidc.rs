//! OIDC JWT verification against a JWKS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::Mutex;

use super::{AuthError, AuthSetupError, map_jwt_error};
use crate::config::OidcProvider;

/// Fetches a JWKS document by URL (provided by the binary, which has an HTTP client).
pub type JwksFetcher = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync,
>;

/// Verified, mapped claims.
#[derive(Debug, Clone)]
pub(super) struct Mapped {
    pub identity: String,
    pub on_behalf_of: Option<String>,
    pub role: Option<String>,
    pub credential_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// One configured identity provider.
pub struct OidcVerifier {
    provider: OidcProvider,
    fetcher: Option<JwksFetcher>,
    cache: Mutex<Option<(JwkSet, Instant)>>,
}

fn claim<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

/// The credential id of a federated token without a `jti` claim: `jwt-` and the first
/// 20 hex digits (80 bits) of the token's BLAKE3 digest. Each token then has its own
/// id, so a time-boxed grant covers only the token it was approved for, and
/// `DELETE /v1/tokens/{id}` can revoke one token. The digest does not reveal the token.
fn fingerprint(token: &str) -> String {
    let digest = blake3::hash(token.as_bytes());
    let hex = digest.to_hex();
    format!("jwt-{}", hex.get(..20).unwrap_or_default())
}

fn claim_str(claims: &serde_json::Value, path: &str) -> Option<String> {
    match claim(claims, path)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

impl OidcVerifier {
    /// Prepares a verifier; a JWKS file is read now so a bad file fails at start.
    pub fn new(
        provider: OidcProvider,
        fetcher: Option<JwksFetcher>,
    ) -> Result<Self, AuthSetupError> {
        let err = |message: String| AuthSetupError::Oidc {
            issuer: provider.issuer.clone(),
            message,
        };
        let cache = match &provider.jwks_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| err(format!("cannot read `{}`: {e}", path.display())))?;
                let set: JwkSet = serde_json::from_slice(&bytes)
                    .map_err(|e| err(format!("`{}` is not a JWKS: {e}", path.display())))?;
                Some((set, Instant::now()))
            }
            None => {
                if fetcher.is_none() {
                    return Err(err("a jwks_url needs an HTTP client".into()));
                }
                None
            }
        };
        Ok(Self {
            provider,
            fetcher,
            cache: Mutex::new(cache),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.provider.issuer
    }

    async fn keys(&self, refresh: bool) -> Result<JwkSet, AuthError> {
        let mut cache = self.cache.lock().await;
        if let (Some(url), Some(fetch)) = (&self.provider.jwks_url, &self.fetcher) {
            let stale = cache
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() > self.provider.jwks_cache);
            if stale || refresh {
                match fetch(url.clone())
                    .await
                    .and_then(|b| serde_json::from_slice::<JwkSet>(&b).map_err(|e| e.to_string()))
                {
                    Ok(set) => *cache = Some((set, Instant::now())),
                    Err(error) => {
                        tracing::warn!(message = "Cannot fetch the JWKS.", issuer = %self.provider.issuer, %error);
                        if cache.is_none() {
                            return Err(AuthError::KeysUnavailable);
                        }
                    }
                }
            }
        }
        cache
            .as_ref()
            .map(|(s, _)| s.clone())
            .ok_or(AuthError::KeysUnavailable)
    }

    pub(super) async fn verify(&self, token: &str) -> Result<Mapped, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(AuthError::BadSignature);
        }
        let mut set = self.keys(false).await?;
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&set) {
            Some(k) => k,
            None => {
                // Key rotation: refetch once.
                set = self.keys(true).await?;
                find(&set).ok_or(AuthError::BadSignature)?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::KeysUnavailable)?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.provider.issuer]);
        v.set_audience(&self.provider.audiences);
        v.leeway = self.provider.leeway.as_secs();
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(|e| map_jwt_error(&e))?;
        let c = data.claims;
        let ident = claim_str(&c, &self.provider.identity_claim).ok_or_else(|| {
            AuthError::Claims(format!("no `{}` claim", self.provider.identity_claim))
        })?;
        let exp = c
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        Ok(Mapped {
            identity: format!("{}{ident}", self.provider.identity_prefix),
            on_behalf_of: self
                .provider
                .on_behalf_of_claim
                .as_deref()
                .and_then(|p| claim_str(&c, p)),
            role: self
                .provider
                .role_claim
                .as_deref()
                .and_then(|p| claim_str(&c, p)),
            credential_id: Some(claim_str(&c, "jti").unwrap_or_else(|| fingerprint(token))),
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or_default(),
        })
    }
}
