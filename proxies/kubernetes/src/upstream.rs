//! The real API server of a target: its URL, the CA pinned for it, and the credential
//! Gatehouse holds for it (a bearer token or a client certificate). The credential
//! is put on forwarded requests only; it never reaches the agent, an event, a log
//! line or an error message.

use std::time::Duration;

use bytes::Bytes;
use gatehouse_core::config::Target;
use http_body_util::Full;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::ProxyError;
use crate::tls;

/// The HTTP client type used towards API servers.
pub(crate) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One target's API server.
pub struct Upstream {
    name: String,
    scheme_authority: String,
    prefix: String,
    host: String,
    bearer: Option<HeaderValue>,
    client: UpstreamClient,
    response_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("url", &format!("{}{}", self.scheme_authority, self.prefix))
            .field(
                "credential",
                &if self.bearer.is_some() {
                    "token"
                } else {
                    "client certificate"
                },
            )
            .finish()
    }
}

fn invalid(target: &str, what: impl std::fmt::Display) -> ProxyError {
    ProxyError::Target(format!("target `{target}`: {what}"))
}

impl Upstream {
    /// Builds the upstream of a `kubernetes` target, resolving its credential.
    pub fn from_target(t: &Target) -> Result<Self, ProxyError> {
        let uri: Uri = t
            .upstream
            .parse()
            .map_err(|e| invalid(&t.name, format!("`upstream` is not a URL ({e})")))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid(&t.name, "`upstream` must be an https:// URL"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid(&t.name, "`upstream` has no host"))?
            .clone();
        let ca = t.ca.as_deref().ok_or_else(|| {
            invalid(
                &t.name,
                "kubernetes targets need `ca` (the API server's CA certificate, pinned)",
            )
        })?;
        let client_auth = match (&t.client_cert, &t.client_key) {
            (Some(cert), Some(key)) => {
                let chain = tls::certificates(cert)?;
                let key_pem = key
                    .resolve()
                    .map_err(|e| invalid(&t.name, format!("`client_key`: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                    .map_err(|_| invalid(&t.name, "`client_key` is not a PEM private key"))?;
                Some((chain, key))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(&t.name, "give both `client_cert` and `client_key`"));
            }
            (None, None) => None,
        };
        let bearer = match &t.token {
            Some(token) => {
                let token = token
                    .resolve()
                    .map_err(|e| invalid(&t.name, format!("`token`: {e}")))?;
                let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| invalid(&t.name, "`token` is not a valid header value"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        if bearer.is_none() && client_auth.is_none() {
            return Err(invalid(
                &t.name,
                "kubernetes targets need `token` or `client_cert` + `client_key`",
            ));
        }
        let config = tls::client_config(ca, client_auth)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Self {
            name: t.name.clone(),
            scheme_authority: format!("https://{authority}"),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            host: authority.host().to_owned(),
            bearer,
            client,
            response_timeout: t.response_timeout(),
        })
    }

    /// The target name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The API server's host (recorded in `session_opened`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The upstream URL of a request path and query.
    pub(crate) fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, hyper::http::Error> {
        let mut s = String::with_capacity(
            self.scheme_authority.len()
                + self.prefix.len()
                + path.len()
                + 1
                + query.map_or(0, str::len),
        );
        s.push_str(&self.scheme_authority);
        s.push_str(&self.prefix);
        s.push_str(path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        Ok(Uri::try_from(s)?)
    }

    /// The `Authorization` value for forwarded requests (none with a client certificate).
    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.bearer.as_ref()
    }

    /// The HTTP client.
    pub(crate) fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// How long the API server may take to send response headers.
    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
}
