//! The admin listener's bounds, over real sockets: half-sent requests are closed after
//! `read_timeout`, connections beyond `max_connections` are closed while the API
//! serves again once others close, and bodies over `max_request_bytes` get 413.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::config::Config;
use gatehouse_core::engine::{Engine, EngineOptions};
use gatehouse_core::identity::Authenticator;
use gatehouse_core::log::{EventLog, LogConfig};
use gatehouse_core::policy::{Policy, PolicyHandle, PolicyOptions, Sources};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const TOKEN: &str = "admin-limits-token-8c1f";

struct Api {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

/// Starts the admin API with `limits` (TOML lines of `[admin]`), over TLS when
/// `tls` holds a certificate and key (PEM).
async fn start(limits: &str, tls: Option<(&str, &str)>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let tls_lines = match tls {
        Some((cert, key)) => {
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            )
        }
        None => String::new(),
    };
    let mut config = Config::parse(&format!(
        "data_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{tls_lines}{limits}\n\
         [[admin.user]]\nname = \"alice@example.com\"\nrole = \"admin\"\ntoken = {{ value = \"{TOKEN}\" }}\n\
         [[target]]\nname = \"db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:1\"\nuser = \"u\"\n",
        dir.path().display()
    ))
    .unwrap();
    config.validate().unwrap();
    config.data_dir = dir.path().to_owned();
    let log = Arc::new(EventLog::open(LogConfig::new(dir.path().join("log"))).unwrap());
    let mut sources = Sources::new();
    sources.add(
        "t.rules",
        "rule reads { when pg.statement.kind == select then allow }",
    );
    let policy = PolicyHandle::new(
        Policy::from_sources(sources, PolicyOptions::default()).unwrap(),
        PolicyOptions::default(),
    );
    let auth = Authenticator::from_config(&config, None).unwrap();
    let engine = Engine::open(EngineOptions::new("gw-admin"), log, policy, auth).unwrap();
    let (stop, shutdown) = watch::channel(false);
    let addr = gatehouse_admin::start(engine, Arc::new(config), shutdown)
        .await
        .unwrap();
    Api {
        addr,
        _dir: dir,
        _stop: stop,
    }
}

/// Reads until the server closes the connection (EOF or reset), or `within` passes.
/// Returns what was read and how long it took, or `None` if still open.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let deadline = started + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `request` and returns the response's status (0 if the connection closed
/// without one) and the raw response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, request: &[u8]) -> (u16, String) {
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn whoami() -> Vec<u8> {
    format!(
        "GET /v1/whoami HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_read_timeout() {
    let api = start("read_timeout = \"1s\"\nmax_connections = 100\n", None).await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        match i % 3 {
            // Nothing at all.
            0 => {}
            // Half the headers.
            1 => s
                .write_all(b"GET /v1/approvals HTTP/1.1\r\nHost: admin\r\n")
                .await
                .unwrap(),
            // A request line, never ended.
            _ => s.write_all(b"POST /v1/tokens HTT").await.unwrap(),
        }
        clients.push(s);
    }
    let started = Instant::now();
    for (i, s) in clients.iter_mut().enumerate() {
        let left = Duration::from_secs(6).saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left).await.is_some(),
            "half-sent client {i} was still open after 6s (read_timeout is 1s)"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // A complete request still works, and a keep-alive connection left idle is
    // closed too.
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    assert_eq!(exchange(&mut s, &whoami()).await.0, 200);
    let mut idle = TcpStream::connect(api.addr).await.unwrap();
    idle.write_all(
        format!("GET /v1/whoami HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(6))
            .await
            .is_some(),
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn half_sent_requests_over_tls_are_closed_after_the_read_timeout() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let api = start("read_timeout = \"1s\"\n", Some((&cert_pem, &key_pem))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // A full request works over TLS.
    let tcp = TcpStream::connect(api.addr).await.unwrap();
    let mut s = connector.connect(name.clone(), tcp).await.unwrap();
    assert_eq!(exchange(&mut s, &whoami()).await.0, 200);
    // Half a request after the handshake is closed.
    let tcp = TcpStream::connect(api.addr).await.unwrap();
    let mut s = connector.connect(name.clone(), tcp).await.unwrap();
    s.write_all(b"GET /v1/approvals HTTP/1.1\r\nHost: a")
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(6))
            .await
            .is_some(),
        "a half-sent request over TLS stayed open"
    );
    // So is a connection that never starts the handshake.
    let mut raw = TcpStream::connect(api.addr).await.unwrap();
    assert!(
        closed_within(&mut raw, Duration::from_secs(6))
            .await
            .is_some(),
        "a connection without a TLS handshake stayed open"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_the_api_serves_once_others_close() {
    let api = start("read_timeout = \"60s\"\nmax_connections = 4\n", None).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(api.addr).await.unwrap());
    }
    // Let the server accept them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Over the limit: even an authenticated request is turned away, at once.
    for _ in 0..3 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        let started = Instant::now();
        let (status, text) = exchange(&mut s, &whoami()).await;
        assert!(
            status == 503 || status == 0,
            "a connection beyond the limit was served: {text}"
        );
        if status == 503 {
            assert!(text.contains("too many connections"), "{text}");
        }
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // Once the holders go, the API serves again.
    drop(holders);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        if exchange(&mut s, &whoami()).await.0 == 200 {
            served = true;
            break;
        }
    }
    assert!(
        served,
        "the API did not serve after the other connections closed"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let api = start("max_request_bytes = 1024\n", None).await;
    let big = format!(
        "{{\"agent\":\"etl\",\"target\":\"db\",\"ttl\":\"5m\",\"pad\":\"{}\"}}",
        "x".repeat(2048)
    );
    // Declared by Content-Length, authenticated or not.
    for auth in [format!("Authorization: Bearer {TOKEN}\r\n"), String::new()] {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        let request = format!(
            "POST /v1/tokens HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
            big.len()
        );
        let (status, text) = exchange(&mut s, request.as_bytes()).await;
        assert_eq!(status, 413, "{text}");
        assert!(text.contains("admin.max_request_bytes"), "{text}");
    }
    // Chunked, with no length declared: counted as it arrives.
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    let request = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let (status, text) = exchange(&mut s, request.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    // A body within the limit is served.
    let small = "{\"agent\":\"etl\",\"target\":\"db\",\"ttl\":\"5m\"}";
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    let request = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{small}",
        small.len()
    );
    let (status, text) = exchange(&mut s, request.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
}
