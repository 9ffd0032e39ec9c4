//! Hostile and slow clients: malformed packets and stalled handshakes are isolated
//! per connection; a slow reader cannot grow the gateway's memory without bound.

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
use std::time::{Duration, Instant};

use support::*;

/// RSS is per process: these tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_stalled_clients_do_not_affect_other_sessions() {
    let _serial = SERIAL.lock().await;
    let f = fixture_with(Setup {
        handshake_timeout: Duration::from_secs(3),
        ..Setup::default()
    })
    .await;
    let token = f.token("bot", "web").await;
    let addr = f.addr;
    // A client that never sends its version, one that stops after it, and one
    // that sends garbage packets.
    let silent = std::net::TcpStream::connect(addr).unwrap();
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(b"SSH-2.0-stall\r\n").unwrap();
    let mut garbage = std::net::TcpStream::connect(addr).unwrap();
    garbage.write_all(b"SSH-2.0-fuzz\r\n").unwrap();
    let junk: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let _ = garbage.write_all(&junk);
    let mut oversized = std::net::TcpStream::connect(addr).unwrap();
    oversized
        .write_all(b"SSH-2.0-big\r\n\xff\xff\xff\xf0\x04")
        .unwrap();

    // Meanwhile a real client works, promptly.
    let t = Instant::now();
    let o = run(f.ssh(&token, "bot", &["echo fine"])).await;
    assert_eq!(text(&o.stdout), "fine\n", "{}", text(&o.stderr));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );

    // The bad connections are closed by the gateway (garbage at once, stalls at the
    // handshake deadline).
    let closed = |mut s: std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let start = Instant::now();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "connection left open"
            );
        }
    };
    let results = tokio::task::spawn_blocking(move || {
        [
            closed(silent),
            closed(stalled),
            closed(garbage),
            closed(oversized),
        ]
    })
    .await
    .unwrap();
    for r in results {
        assert!(r < Duration::from_secs(8), "{results:?}");
    }
    // Still serving.
    let o = run(f.ssh(&token, "bot", &["echo again"])).await;
    assert_eq!(text(&o.stdout), "again\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_grow_gateway_memory() {
    let _serial = SERIAL.lock().await;
    let f = fixture().await;
    let token = f.token("bot", "web").await;
    const TOTAL: usize = 400 * 1024 * 1024;
    let mut c = f.ssh(&token, "bot", &[&format!("head -c {TOTAL} /dev/zero")]);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    let before = rss_kib();
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Do not read for a while: the upstream keeps producing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stalled = rss_kib();
    let n = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0usize;
        let mut peak = 0u64;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            // Read slowly for the first 20 MiB.
            if n < 20 << 20 {
                std::thread::sleep(Duration::from_millis(2));
            }
            peak = peak.max(rss_kib());
        }
        (n, peak)
    })
    .await
    .unwrap();
    let _ = child.wait();
    let (n, peak) = n;
    assert_eq!(n, TOTAL);
    let growth = stalled.max(peak).saturating_sub(before);
    eprintln!(
        "rss before {before} KiB, stalled {stalled} KiB, peak {peak} KiB, stream {TOTAL} bytes"
    );
    assert!(
        growth < 48 * 1024,
        "gateway memory grew by {growth} KiB while the client was slow"
    );
}
