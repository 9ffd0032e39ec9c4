//! Event log append throughput per durability mode, and shipping throughput to
//! Parquet and Kafka.
//!
//! Run: `cargo bench -p gatehouse-benches --bench log_and_ship --profile bench-fast`
//! (the Kafka group starts a tansu broker on a free loopback port; install it with
//! `scripts/install-deps`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_core::log::{Durability, EventLog, LogConfig};
use gatehouse_events::{Event, synth};
use gatehouse_ship::kafka::{KafkaOptions, KafkaSink};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink};
use gatehouse_ship::{ShipOptions, Sink, Source};

// The same allocator as the `gatehouse` binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn events(n: u64) -> Vec<Event> {
    (0..n).map(|i| synth::sample(i, "gw-bench")).collect()
}

fn open(dir: &std::path::Path, durability: Durability) -> EventLog {
    let mut cfg = LogConfig::new(dir);
    cfg.durability = durability;
    EventLog::open(cfg).unwrap()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    let pool = events(10_000);
    for (name, durability) in [
        ("batch", Durability::default()),
        ("strict", Durability::Strict),
    ] {
        for threads in [1usize, 2, 8] {
            // Strict mode is fsync-bound; fewer events keep runs short.
            let per_thread: u64 = if durability == Durability::Strict {
                500
            } else {
                20_000
            };
            g.throughput(Throughput::Elements(per_thread * threads as u64));
            g.bench_function(BenchmarkId::new(name, format!("{threads}-threads")), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let tmp = tempfile::tempdir().unwrap();
                        let log = Arc::new(open(tmp.path(), durability));
                        let start = Instant::now();
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let log = log.clone();
                                let pool = &pool;
                                s.spawn(move || {
                                    for i in 0..per_thread {
                                        let e = &pool[((i as usize) * threads + t) % pool.len()];
                                        log.append(e).unwrap();
                                    }
                                });
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                });
            });
        }
    }
    // The proxy's common path: request + decision in one append.
    g.throughput(Throughput::Elements(40_000));
    g.bench_function(BenchmarkId::new("batch", "pairs-1-thread"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let tmp = tempfile::tempdir().unwrap();
                let log = open(tmp.path(), Durability::default());
                let start = Instant::now();
                for pair in pool.chunks(2).cycle().take(20_000) {
                    log.append_batch(pair).unwrap();
                }
                total += start.elapsed();
            }
            total
        });
    });
    g.finish();
}

/// Events shipped per iteration (Kafka, and Parquet with small files).
const SHIP_N: u64 = 100_000;
/// Events shipped per iteration to Parquet with the default roll size (200,000 rows):
/// enough for files to roll while the next ones are being encoded.
const SHIP_PARQUET_N: u64 = 600_000;

fn ship_once<S: Sink + 'static>(
    rt: &tokio::runtime::Runtime,
    log_dir: &std::path::Path,
    sink: S,
    n: u64,
) -> Duration {
    let cursors = tempfile::tempdir().unwrap();
    let mut opts = ShipOptions::new(cursors.path());
    opts.stop_at = Some(n);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let shipped = rt
        .block_on(gatehouse_ship::run(
            Source::Dir(log_dir.to_owned()),
            sink,
            opts,
            rx,
        ))
        .unwrap();
    assert_eq!(shipped, n);
    start.elapsed()
}

fn ship(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log_tmp = tempfile::tempdir().unwrap();
    {
        let log = open(log_tmp.path(), Durability::default());
        for chunk in events(SHIP_PARQUET_N).chunks(1000) {
            log.append_batch(chunk).unwrap();
        }
    }
    let mut g = c.benchmark_group("ship");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(SHIP_PARQUET_N));
    g.bench_function("parquet", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let out = tempfile::tempdir().unwrap();
                    let p = ParquetOptions::new(out.path());
                    let sink = ParquetSink::new(p).unwrap();
                    ship_once(&rt, log_tmp.path(), sink, SHIP_PARQUET_N)
                })
                .sum()
        });
    });
    g.throughput(Throughput::Elements(SHIP_N));
    g.bench_function("parquet-small-files", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let out = tempfile::tempdir().unwrap();
                    let mut p = ParquetOptions::new(out.path());
                    p.max_rows = 25_000;
                    let sink = ParquetSink::new(p).unwrap();
                    ship_once(&rt, log_tmp.path(), sink, SHIP_N)
                })
                .sum()
        });
    });
    match gatehouse_benches::start_broker() {
        Some(broker) => {
            g.bench_function("kafka", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            ship_once(
                                &rt,
                                log_tmp.path(),
                                KafkaSink::new(KafkaOptions::new(&broker.addr)).unwrap(),
                                SHIP_N,
                            )
                        })
                        .sum()
                });
            });
        }
        None => eprintln!("ship/kafka NOT RUN: tansu broker not found; run scripts/install-deps"),
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let evs = events(1000);
    let json: Vec<Vec<u8>> = evs.iter().map(|e| e.to_json().unwrap()).collect();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("json_encode", |b| {
        b.iter(|| {
            evs.iter()
                .map(|e| e.to_json().unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| {
            json.iter()
                .map(|j| Event::from_json(j).unwrap().schema_version as usize)
                .sum::<usize>()
        })
    });
    g.bench_function("arrow_batch", |b| {
        b.iter(|| {
            gatehouse_events::arrow::to_record_batch(&evs)
                .unwrap()
                .num_rows()
        })
    });
    g.bench_function("ocsf_json", |b| {
        b.iter(|| {
            evs.iter()
                .map(|e| {
                    let mut v = Vec::with_capacity(1024);
                    gatehouse_events::ocsf::write_ocsf(e, &mut v).unwrap();
                    v.len()
                })
                .sum::<usize>()
        })
    });
    let big = events(100_000);
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("parquet_file_100k", |b| {
        let dir = tempfile::tempdir().unwrap();
        b.iter(|| gatehouse_ship::parquet::write_file(dir.path(), "bench.parquet", &big).unwrap());
    });
    g.finish();
}

criterion_group!(benches, encode, append, ship);
criterion_main!(benches);
