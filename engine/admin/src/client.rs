//! A small HTTP client for the admin API (used by the CLI) and for webhooks.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Cannot reach the server.
    #[error("cannot reach {url}: {message}")]
    Connect {
        /// URL.
        url: String,
        /// Problem.
        message: String,
    },
    /// The server answered with an error.
    #[error("{status}: {message}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// The server's error message.
        message: String,
    },
    /// Bad URL or body.
    #[error("{0}")]
    Invalid(String),
}

/// HTTP(S) JSON client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client trusting the Mozilla root set (webpki-roots) plus plain HTTP.
    pub fn new(timeout: Duration) -> Self {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots_anchors(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let connector = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build(),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .build(),
        };
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends a request with an optional bearer token and JSON body; returns the
    /// status and body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut headers = Vec::new();
        if let Some(t) = bearer {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let payload = match body {
            Some(b) => {
                headers.push(("content-type", "application/json".to_owned()));
                Bytes::from(serde_json::to_vec(b).map_err(|e| ClientError::Invalid(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        self.send_bytes(method, url, &headers, payload).await
    }

    /// Sends `payload` as is with extra headers; returns the status and body.
    pub async fn send_bytes(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        payload: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut req = Request::builder().method(method).uri(url).header(
            "user-agent",
            concat!("gatehouse/", env!("CARGO_PKG_VERSION")),
        );
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(payload))
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let connect = |message: String| ClientError::Connect {
            url: url.to_owned(),
            message,
        };
        let resp = tokio::time::timeout(self.timeout, self.inner.request(req))
            .await
            .map_err(|_| connect("timed out".into()))?
            .map_err(|e| connect(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| connect(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends and decodes a JSON response, turning error statuses into [`ClientError::Status`].
    pub async fn json(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, bytes) = self.send(method, url, bearer, body).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            return Err(ClientError::Status { status, message });
        }
        Ok(value)
    }
}

fn webpki_roots_anchors() -> Vec<rustls::pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.to_vec()
}
