//! TLS for both sides: the gateway's HTTPS front (a configured certificate, or a
//! self-signed one generated under the data directory) and the pinned-CA client
//! towards the real API server. rustls with the aws-lc-rs provider, installed
//! explicitly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::ProxyError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Tls(format!("`{}`: {e}", path.display()))
}

/// Certificates of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The gateway's server configuration (HTTP/1.1 only: exec and port-forward need
/// HTTP/1.1 upgrades, and kubectl then keeps every request on HTTP/1.1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ProxyError> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Certificate and key files of the gateway's HTTPS front: the configured pair, or a
/// self-signed certificate generated on first start under `dir` (for `localhost`,
/// `127.0.0.1`, `::1`, the host name and the listen address). Give kubectl the
/// certificate with `gatehouse token issue --kubeconfig FILE --ca CERT`.
pub fn front_certificate(
    configured: Option<(&Path, &Path)>,
    dir: &Path,
    listen: std::net::SocketAddr,
) -> Result<(PathBuf, PathBuf), ProxyError> {
    if let Some((cert, key)) = configured {
        return Ok((cert.to_owned(), key.to_owned()));
    }
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|e| pem_error(dir, e))?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| ProxyError::Tls(format!("cannot generate a certificate: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gatehouse kubernetes proxy");
    let signing = rcgen::KeyPair::generate()
        .map_err(|e| ProxyError::Tls(format!("cannot generate a key: {e}")))?;
    let generated = params
        .self_signed(&signing)
        .map_err(|e| ProxyError::Tls(format!("cannot generate a certificate: {e}")))?;
    write_private(&key, signing.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.pem()).map_err(|e| pem_error(&cert, e))?;
    tracing::info!(
        message = "Generated a self-signed certificate for the Kubernetes proxy.",
        cert = %cert.display()
    );
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| pem_error(path, e))
}

/// The client configuration towards an API server: only `ca` is trusted; with a
/// client certificate when the target authenticates that way.
pub fn client_config(
    ca: &Path,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, ProxyError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| pem_error(ca, e))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    // ALPN (`http/1.1` only: upgrades need it) is set by the connector.
    match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ProxyError::Tls(format!("client certificate: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}
