//! 50 sequences across 100,000 live identities: decision latency and memory per live
//! partial match.
//!
//! `cargo bench --profile bench-fast --bench dsl_sequences`

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark code"
)]

#[path = "dsl_common.rs"]
mod common;

use std::hint::black_box;

use chrono::Duration;
use criterion::{Criterion, Throughput};
use gatehouse_core::policy::{EventContext, EventSchema, Sources};
use gatehouse_dsl::{Limits, LoadOptions, SequenceState, Verdict};
use gatehouse_events::Protocol;
use gatehouse_events::payload::PgKind;

const SEQUENCES: usize = 50;
const IDENTITIES: usize = 100_000;

fn sequences() -> String {
    let mut s = String::from("default allow\n");
    for j in 0..SEQUENCES {
        s.push_str(&format!(
            "sequence s{j} by identity within 30m {{\n\
             stage a: pg.statement.kind == select and pg.statement.tables intersects [\"db{j}.hosts\"]\n\
             stage b within 10m: ssh.session.open and ssh.target.host == \"h{j}\"\n\
             stage c: k8s.verb == create and k8s.resource == \"pods\" and k8s.namespace == \"ns{j}\"\n\
             then require approval from \"sre\"\n}}\n"
        ));
    }
    s
}

fn main() {
    let mut sources = Sources::new();
    sources.add("seq.rules", sequences());
    let rules = gatehouse_dsl::load(sources, &EventSchema, LoadOptions::default())
        .map_err(|e| e.diagnostics)
        .unwrap();
    let mut state = SequenceState::new(Limits {
        max_per_key: 8,
        max_total: 2_000_000,
    });
    let mut verdict = Verdict::default();
    // Populate: every identity starts one sequence; every fourth also takes stage two.
    let rss_before = common::rss_bytes();
    let mut n = 0u128;
    for i in 0..IDENTITIES {
        let who = format!("agent:{i:06}");
        let j = i % SEQUENCES;
        n += 1;
        let table = format!("db{j}.hosts");
        let e = common::event(
            n,
            &who,
            common::t0(),
            Protocol::Postgres,
            common::pg(PgKind::Select, &[&table]),
        );
        rules.evaluate_into(&EventContext::new(&e), &mut state, &mut verdict);
        if i % 4 == 0 {
            n += 1;
            let e = common::event(
                n,
                &who,
                common::t0() + Duration::seconds(1),
                Protocol::Ssh,
                common::ssh_open(&format!("h{j}")),
            );
            rules.evaluate_into(&EventContext::new(&e), &mut state, &mut verdict);
        }
    }
    let rss_after = common::rss_bytes();
    let live = state.live_partials();
    assert_eq!(live, IDENTITIES);
    let approx = state.approx_bytes();
    // Decisions on live keys: a mix of non-matching, advancing and completing events.
    let events: Vec<_> = (0..6_000usize)
        .map(|k| {
            let i = (k * 7_919) % IDENTITIES;
            let who = format!("agent:{i:06}");
            let j = i % SEQUENCES;
            let at = common::t0() + Duration::seconds(2);
            let (p, d) = match k % 3 {
                0 => (
                    Protocol::Postgres,
                    common::pg(PgKind::Select, &["app.orders"]),
                ),
                1 => (Protocol::Ssh, common::ssh_exec(&["ls"], "web-1")),
                _ => (
                    Protocol::Kubernetes,
                    common::k8s("get", "pods", &format!("ns{j}")),
                ),
            };
            common::event(1_000_000 + k as u128, &who, at, p, d)
        })
        .collect();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    let mut group = c.benchmark_group("dsl_sequences/50_seq_100k_ids");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("evaluate_into", |b| {
        b.iter(|| {
            for e in &events {
                rules.evaluate_into(&EventContext::new(e), &mut state, &mut verdict);
                black_box(verdict.effect);
            }
        })
    });
    group.finish();
    let (p50, p99, p999) = common::percentiles(&events, 10, |e| {
        rules.evaluate_into(&EventContext::new(e), &mut state, &mut verdict);
        black_box(verdict.effect);
    });
    c.final_summary();
    println!("\n{SEQUENCES} sequences, {IDENTITIES} identities, {live} live partial matches");
    println!("  per-event latency: p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns");
    println!(
        "  memory per live partial match: {:.0} B (accounted), {:.0} B (RSS delta {} KiB)",
        approx as f64 / live as f64,
        rss_after.saturating_sub(rss_before) as f64 / live as f64,
        rss_after.saturating_sub(rss_before) / 1024
    );
}
