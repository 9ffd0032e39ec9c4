//! `kube-bench`: GET requests over keep-alive HTTPS connections, measuring latency
//! and throughput. `kube-bench --url URL --ca PEM --token-file FILE --path PATH
//! [--requests N] [--concurrency C] [--warmup W]` prints one JSON line:
//! `{"requests":N,"seconds":S,"rps":R,"p50_us":..,"p90_us":..,"p99_us":..,"errors":E}`.
//!
//! Each of the C workers owns one connection and sends its requests one after the
//! other, as kubectl does on one connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark tool"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

struct Args {
    url: String,
    ca: PathBuf,
    token: String,
    path: String,
    requests: usize,
    concurrency: usize,
    warmup: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        ca: PathBuf::new(),
        token: String::new(),
        path: "/api/v1/namespaces/default/pods/web".into(),
        requests: 5000,
        concurrency: 1,
        warmup: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = v,
            "--ca" => a.ca = v.into(),
            "--token-file" => a.token = std::fs::read_to_string(v).unwrap().trim().to_owned(),
            "--path" => a.path = v,
            "--requests" => a.requests = v.parse().unwrap(),
            "--concurrency" => a.concurrency = v.parse().unwrap(),
            "--warmup" => a.warmup = v.parse().unwrap(),
            other => panic!("unknown argument `{other}`"),
        }
    }
    assert!(
        !a.url.is_empty() && !a.token.is_empty(),
        "--url and --token-file are required"
    );
    a
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(a: &Args, tls: Arc<rustls::ClientConfig>) -> Sender {
    let uri: hyper::Uri = a.url.parse().unwrap();
    let host = uri.host().unwrap().to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from(host).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(s: &mut Sender, a: &Args, uri: &str) -> bool {
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {}", a.token))
        .header("accept", "application/json")
        .header("user-agent", "kube-bench")
        .body(Empty::new())
        .unwrap();
    match s.send_request(req).await {
        Ok(r) => {
            let ok = r.status().is_success();
            ok && r.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

fn main() {
    let a = Arc::new(args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&a.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Arc::new(cfg);
        let uri = format!("{}{}", a.url.trim_end_matches('/'), a.path);
        let per_worker = a.requests / a.concurrency.max(1);
        let start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..a.concurrency.max(1) {
            let a = a.clone();
            let tls = tls.clone();
            let uri = uri.clone();
            workers.push(tokio::spawn(async move {
                let mut s = connect(&a, tls).await;
                for _ in 0..a.warmup / a.concurrency.max(1) {
                    get(&mut s, &a, &uri).await;
                }
                let mut lat = Vec::with_capacity(per_worker);
                let mut errors = 0u64;
                let began = Instant::now();
                for _ in 0..per_worker {
                    let t = Instant::now();
                    if !get(&mut s, &a, &uri).await {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors, began.elapsed())
            }));
        }
        let mut all: Vec<Duration> = Vec::new();
        let mut errors = 0;
        let mut busy = Duration::ZERO;
        for w in workers {
            let (lat, e, took) = w.await.unwrap();
            all.extend(lat);
            errors += e;
            busy = busy.max(took);
        }
        let _ = start;
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 - 1.0) * p) as usize].as_micros();
        println!(
            "{{\"requests\":{},\"seconds\":{:.3},\"rps\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"errors\":{}}}",
            all.len(),
            busy.as_secs_f64(),
            all.len() as f64 / busy.as_secs_f64(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            errors
        );
    });
}
