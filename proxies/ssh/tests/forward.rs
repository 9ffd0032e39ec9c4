//! Port forwarding (`ssh -L`, `ssh -W`): judged destinations, allowed and refused;
//! agent and X11 forwarding refused and recorded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use gatehouse_events::payload::{Effect, Payload, ResultStatus, SshRequestKind};
use support::*;

/// A TCP echo server on a free port (a thread per connection). A failed accept does
/// not stop it: a forward the test relies on would then fail to connect. (One CI run
/// saw the tunnel reset once; the cause was not captured, so a failed tunnel now
/// reports ssh's messages and the gateway's decisions and results.)
fn echo_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forwarding_is_judged_allowed_and_refused() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let echo = echo_server();
    // A free port can be taken by another test's process before ssh binds it; ssh
    // then exits (ExitOnForwardFailure) and something else answers on the port. Such
    // an attempt is retried with new ports.
    let mut attempt = 0;
    let (mut child, local, refused_local) = loop {
        attempt += 1;
        let local = gatehouse_testkit::free_port();
        let refused_local = gatehouse_testkit::free_port();
        let spec = format!("127.0.0.1:{local}:127.0.0.1:{echo}");
        let spec9 = format!("127.0.0.1:{refused_local}:127.0.0.1:9");
        let mut tunnel = f.ssh_with(
            &token,
            "bot",
            &[
                "-N",
                "-L",
                &spec,
                "-L",
                &spec9,
                "-o",
                "ExitOnForwardFailure=yes",
            ],
            &[],
        );
        tunnel.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = tunnel.spawn().unwrap();
        let opened = f
            .events_when(|e| {
                e.iter()
                    .filter(|e| matches!(e.payload, Payload::SessionOpened(_)))
                    .count()
                    >= attempt
            })
            .await;
        assert!(
            opened
                .iter()
                .any(|e| matches!(e.payload, Payload::SessionOpened(_)))
        );
        gatehouse_testkit::wait_port(local, Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(300)).await;
        if child.try_wait().unwrap().is_none() {
            break (child, local, refused_local);
        }
        assert!(
            attempt < 5,
            "ssh -L could not bind a free port in 5 attempts"
        );
    };
    let got = tokio::task::spawn_blocking(move || {
        gatehouse_testkit::wait_port(local, Duration::from_secs(15));
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"ping through the gateway\n").unwrap();
        let mut buf = vec![0u8; 25];
        s.read_exact(&mut buf)
            .map_err(|e| format!("reading the echo through the tunnel: {e}"))?;
        // The refused forward: the local connection is closed without data.
        let mut r = std::net::TcpStream::connect(("127.0.0.1", refused_local)).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut one = [0u8; 1];
        assert!(matches!(r.read(&mut one), Ok(0) | Err(_)));
        Ok::<_, String>(buf)
    })
    .await
    .unwrap();
    let got = got.unwrap_or_else(|e| {
        // Say why the tunnel failed: ssh's own messages and the gateway's results.
        let _ = child.kill();
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let results: Vec<_> = f
            .events()
            .into_iter()
            .filter(|e| {
                matches!(
                    e.payload,
                    Payload::ResultObserved(_) | Payload::DecisionMade(_)
                )
            })
            .map(|e| format!("{:?}", e.payload))
            .collect();
        panic!("{e}\nssh said:\n{stderr}\ngateway decisions and results:\n{results:#?}")
    });
    assert_eq!(got, b"ping through the gateway\n");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();

    // -W uses the same direct-tcpip channel.
    let o = run(f.ssh_with(&token, "bot", &["-W", "127.0.0.1:9"], &[])).await;
    assert_eq!(o.status.code(), Some(255));

    let events = f.events();
    let forwards: Vec<_> = events
        .iter()
        .filter_map(|e| {
            e.ssh()
                .filter(|s| s.kind == SshRequestKind::PortForward)
                .map(|s| (e.id, s.forward_port))
        })
        .collect();
    // (the harness's port probe opened one more forward to the echo server)
    let ports: Vec<_> = forwards.iter().map(|f| f.1).collect();
    assert_eq!(ports.first(), Some(&Some(echo)));
    assert_eq!(
        ports.iter().filter(|p| **p == Some(9)).count(),
        2,
        "{ports:?}"
    );
    let effect = |id| {
        events.iter().find_map(|e| match &e.payload {
            Payload::DecisionMade(d) if d.request == Some(id) => Some(d.effect),
            _ => None,
        })
    };
    assert_eq!(effect(forwards[0].0), Some(Effect::Allow));
    assert_eq!(effect(forwards.last().unwrap().0), Some(Effect::Block));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_x11_forwarding_are_refused_and_recorded() {
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    let agent_sock = f.dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&agent_sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if agent_sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = f.ssh_with(
        &token,
        "bot",
        &["-A", "-X", "-o", "ForwardX11Trusted=yes"],
        &["echo $SSH_AUTH_SOCK; echo done"],
    );
    c.env("SSH_AUTH_SOCK", &agent_sock);
    let o = run(c).await;
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "\ndone\n", "no agent socket on the target");
    let events = f.events();
    let refused: Vec<String> = events
        .iter()
        .filter_map(|e| {
            e.ssh()
                .filter(|s| s.kind == SshRequestKind::Forwarding)
                .and_then(|s| s.path.clone())
        })
        .collect();
    assert!(
        refused.contains(&"auth-agent-req@openssh.com".to_owned()),
        "{refused:?}"
    );
    assert!(refused.contains(&"x11-req".to_owned()), "{refused:?}");
    assert!(events.iter().any(
        |e| matches!(&e.payload, Payload::ResultObserved(r) if r.status == ResultStatus::Refused)
    ));
}
