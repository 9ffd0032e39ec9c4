//! Stateless decision latency (p50/p99) and throughput for 10, 100 and 1,000 rules.
//!
//! `cargo bench --profile bench-fast --bench dsl_decide`

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark code"
)]

#[path = "dsl_common.rs"]
mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use gatehouse_core::policy::{EventContext, EventSchema, Policy, PolicyOptions, Sources};
use gatehouse_dsl::{LoadOptions, SequenceState, Verdict};

fn main() {
    let events = common::mixed_events(6_000);
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    let mut report = Vec::new();
    for n in [10usize, 100, 1_000] {
        let mut sources = Sources::new();
        sources.add("bench.rules", common::stateless_rules(n));
        let rules = gatehouse_dsl::load(sources.clone(), &EventSchema, LoadOptions::default())
            .map_err(|e| e.diagnostics)
            .unwrap();
        assert_eq!(rules.rule_count(), n.max(3));
        let mut group = c.benchmark_group(format!("dsl_decide/{n}_rules"));
        group.throughput(Throughput::Elements(events.len() as u64));
        let mut verdict = Verdict::default();
        let mut state = SequenceState::default();
        group.bench_function("ruleset_evaluate_into", |b| {
            b.iter(|| {
                for e in &events {
                    rules.evaluate_into(&EventContext::new(e), &mut state, &mut verdict);
                    black_box(verdict.effect);
                }
            })
        });
        let policy = Policy::from_sources(sources, PolicyOptions::default()).unwrap();
        group.bench_function("policy_decide", |b| {
            b.iter(|| {
                for e in &events {
                    black_box(policy.decide(e, None).effect);
                }
            })
        });
        group.finish();
        let (p50, p99, p999) = common::percentiles(&events, 20, |e| {
            rules.evaluate_into(&EventContext::new(e), &mut state, &mut verdict);
            black_box(verdict.effect);
        });
        let (dp50, dp99, dp999) = common::percentiles(&events, 20, |e| {
            black_box(policy.decide(e, None).effect);
        });
        report.push(format!(
            "{n:>5} rules: evaluate_into p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns | Policy::decide p50 {dp50} ns, p99 {dp99} ns, p99.9 {dp999} ns"
        ));
    }
    c.final_summary();
    println!("\nper-event latency (timed one by one, includes ~20 ns of clock overhead):");
    for line in report {
        println!("  {line}");
    }
}
