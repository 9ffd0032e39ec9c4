//! `kube-upstream`: the test API server as a process, for benchmarks and manual
//! tries. `kube-upstream --dir DIR --token-file FILE [--port N] [--threads N]` writes
//! `DIR/ca.pem` and prints `ready https://127.0.0.1:PORT` once it listens; it runs
//! until killed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test tool"
)]

use std::path::PathBuf;

fn main() {
    let mut dir = None;
    let mut token_file = None;
    let mut port = 0u16;
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value())),
            "--token-file" => token_file = Some(PathBuf::from(value())),
            "--port" => port = value().parse().expect("--port"),
            "--threads" => threads = value().parse().expect("--threads"),
            other => panic!("unknown argument `{other}`"),
        }
    }
    let dir = dir.expect("--dir DIR");
    let token = std::fs::read_to_string(token_file.expect("--token-file FILE")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let server = gatehouse_kube_upstream::KubeUpstream::start_in(&dir, token.trim(), port, threads);
    println!("ready {}", server.url());
    loop {
        std::thread::park();
    }
}
