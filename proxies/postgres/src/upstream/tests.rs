#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

//! Logins against a scripted upstream: what the gateway accepts from a server that
//! does not prove it knows the credential, and what a timeout says.

use tokio::net::TcpListener;

use super::*;
use gatehouse_core::config::Config;

/// How the scripted server behaves after the client's SCRAM proof.
#[derive(Clone, Copy)]
enum Script {
    /// A signature made with the wrong key, then success.
    ForgedSignature,
    /// No SASLFinal: straight to AuthenticationOk.
    SkipFinal,
    /// Reads the startup message, then says nothing.
    Silent,
    /// Trust authentication, then no ReadyForQuery.
    NeverReady,
}

async fn read_message(s: &mut TcpStream, startup: bool) -> Vec<u8> {
    let mut head = vec![0u8; if startup { 4 } else { 5 }];
    s.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes(head[head.len() - 4..].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await.unwrap();
    body
}

fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    put(&mut b, b'R', |b| {
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(data);
    });
    b.to_vec()
}

/// A one-connection upstream following `script`; returns its address.
async fn upstream(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_message(&mut s, true).await;
        match script {
            Script::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Script::NeverReady => {
                s.write_all(&auth(0, &[])).await.unwrap();
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Script::ForgedSignature | Script::SkipFinal => {}
        }
        s.write_all(&auth(10, b"SCRAM-SHA-256\0\0")).await.unwrap();
        let first = read_message(&mut s, false).await;
        let first = String::from_utf8_lossy(&first).into_owned();
        let nonce = first.rsplit_once("r=").unwrap().1.to_owned();
        let server_first = format!("r={nonce}srv,s=c2FsdHNhbHQ=,i=4096");
        s.write_all(&auth(11, server_first.as_bytes()))
            .await
            .unwrap();
        read_message(&mut s, false).await;
        if let Script::ForgedSignature = script {
            let v = format!(
                "v={}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32])
            );
            s.write_all(&auth(12, v.as_bytes())).await.unwrap();
        }
        s.write_all(&auth(0, &[])).await.unwrap();
        let mut ready = BytesMut::new();
        put(&mut ready, b'Z', |b| b.extend_from_slice(b"I"));
        s.write_all(&ready).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    addr
}

async fn login_to(script: Script, timeout: Duration) -> Result<Upstream, UpstreamError> {
    let addr = upstream(script).await;
    let config = Config::parse(&format!(
        "[[target]]\nname = \"t\"\nprotocol = \"postgres\"\nupstream = \"{addr}\"\nuser = \"u\"\npassword = {{ value = \"pw\" }}\n"
    ))
    .unwrap();
    let target = config.target("t").unwrap();
    let password = target.password.as_ref().unwrap().resolve().unwrap();
    let keys = scram::KeyCache::default();
    connect(Connect {
        target,
        password: Some(&password),
        tls: None,
        params: &[],
        timeout,
        keys: &keys,
    })
    .await
}

#[tokio::test]
async fn a_server_that_does_not_prove_the_credential_is_refused() {
    let e = login_to(Script::ForgedSignature, Duration::from_secs(10))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("signature is wrong"), "{e}");
    let e = login_to(Script::SkipFinal, Duration::from_secs(10))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("without completing SCRAM"), "{e}");
}

#[tokio::test]
async fn a_timeout_names_the_step_and_the_setting() {
    let e = login_to(Script::Silent, Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            UpstreamError::Timeout {
                step: Step::Authenticate,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .ends_with("timed out after 300ms (`postgres.connect_timeout`) during the authentication with the upstream"),
        "{e}"
    );
    let e = login_to(Script::NeverReady, Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            UpstreamError::Timeout {
                step: Step::Ready,
                ..
            }
        ),
        "{e:?}"
    );
}
