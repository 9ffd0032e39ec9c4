//! `exec`/`attach`: the WebSocket channel protocol (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`), and a SPDY upgrade that echoes bytes.
//!
//! The "container" prints `ran: ARGV`, echoes stdin lines as `stdin: LINE`, and exits
//! 0 — or 3 with `failing` on stderr when the command is `fail`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::api::{Body, json_response};

fn accept_key(key: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim().as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    STANDARD.encode(ctx.finish().as_ref())
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => f.push(n as u8),
        n @ 126..=0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

fn channel(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![ch];
    p.extend_from_slice(data);
    frame(2, &p)
}

/// Reads one frame: (opcode, unmasked payload); `None` at EOF.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await.ok()?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key).await.ok()?;
    }
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    r.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some((opcode, payload))
}

/// Answers an exec/attach request with a protocol upgrade.
pub fn upgrade(req: Request<Incoming>, q: &[(String, String)]) -> Response<Body> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let flag = |k: &str| {
        q.iter()
            .any(|(key, v)| key == k && matches!(v.as_str(), "1" | "true"))
    };
    let argv: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let (stdin, stdout, stderr) = (flag("stdin"), flag("stdout"), flag("stderr"));
    let upgrade = header("upgrade").to_ascii_lowercase();
    if upgrade == "websocket" {
        let offered = header("sec-websocket-protocol");
        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
        let Some(protocol) = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
            .into_iter()
            .find(|p| offered.contains(p))
        else {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"kind": "Status", "status": "Failure", "message": "no supported subprotocol", "code": 400}),
            );
        };
        let accept = accept_key(&header("sec-websocket-key"));
        let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
            http_body_util::Empty::new(),
        ));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("sec-websocket-accept", accept.parse().unwrap());
        h.insert("sec-websocket-protocol", protocol.parse().unwrap());
        let v5 = protocol.starts_with("v5");
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            run(TokioIo::new(up), argv, stdin, stdout, stderr, v5).await;
        });
        return r;
    }
    if upgrade.starts_with("spdy/") {
        let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
            http_body_util::Empty::new(),
        ));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert("upgrade", "SPDY/3.1".parse().unwrap());
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            let mut io = TokioIo::new(up);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = io.flush().await;
            }
            let _ = io.shutdown().await;
        });
        return r;
    }
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"kind": "Status", "status": "Failure", "message": "Upgrade request required", "code": 400}),
    )
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    argv: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    v5: bool,
) {
    let (mut r, mut w) = tokio::io::split(io);
    if stdout {
        let line = format!("ran: {}\n", argv.join(" "));
        let _ = w.write_all(&channel(1, line.as_bytes())).await;
        let _ = w.flush().await;
    }
    let mut client_closed = false;
    if stdin {
        while let Some((opcode, payload)) = read_frame(&mut r).await {
            match opcode {
                8 => {
                    client_closed = true;
                    break;
                }
                1 | 2 => match payload.split_first() {
                    // v5: the client closed its stdin.
                    Some((255, rest)) if v5 && rest == [0] => break,
                    Some((0, data)) if !data.is_empty() => {
                        for line in String::from_utf8_lossy(data).lines() {
                            let echo = format!("stdin: {line}\n");
                            let _ = w.write_all(&channel(1, echo.as_bytes())).await;
                        }
                        let _ = w.flush().await;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let status = if argv.first().map(String::as_str) == Some("fail") {
        if stderr {
            let _ = w.write_all(&channel(2, b"failing\n")).await;
        }
        json!({"metadata": {}, "status": "Failure",
               "message": "command terminated with non-zero exit code: exit status 3",
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
    } else {
        json!({"metadata": {}, "status": "Success"})
    };
    let _ = w
        .write_all(&channel(3, status.to_string().as_bytes()))
        .await;
    let _ = w.write_all(&frame(8, &1000u16.to_be_bytes())).await;
    let _ = w.flush().await;
    if !client_closed {
        // Wait for the client's close (or give up) before dropping the connection.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while let Some((opcode, _)) = read_frame(&mut r).await {
                if opcode == 8 {
                    break;
                }
            }
        })
        .await;
    }
    let _ = w.shutdown().await;
}
