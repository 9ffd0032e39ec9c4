//! `gatehouse-demo [--gatehouse PATH] [--campaign N]`: the end-to-end demo (see the
//! library docs). `scripts/demo` builds and runs it. `--campaign N` runs the
//! lateral-movement campaigns N times instead and prints the time from each
//! completing request to its finding on the alerts topic (p50/p99), for
//! `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut gatehouse = None;
    let mut campaigns: Option<usize> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gatehouse" => gatehouse = args.next().map(PathBuf::from),
            "--campaign" => campaigns = args.next().and_then(|n| n.parse().ok()),
            other => {
                eprintln!(
                    "usage: gatehouse-demo [--gatehouse PATH]   (unknown argument `{other}`)"
                );
                return ExitCode::from(2);
            }
        }
    }
    // Default: the `gatehouse` binary next to this one (same cargo target dir).
    let gatehouse = gatehouse.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("gatehouse")))
    });
    let Some(gatehouse) = gatehouse.filter(|p| p.exists()) else {
        eprintln!(
            "gatehouse-demo: cannot find the `gatehouse` binary; build it (cargo build --bin gatehouse) or pass --gatehouse PATH"
        );
        return ExitCode::FAILURE;
    };
    let examples = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let mut out = std::io::stdout();
    if let Some(n) = campaigns {
        let mut latencies = Vec::new();
        for round in 0..n {
            let r = gatehouse_demo::campaign::run(&gatehouse, &examples, &mut std::io::sink());
            println!(
                "round {round}: {} chain findings, {} upstream failures",
                r.chain_findings.values().sum::<usize>(),
                r.upstream_failures.len()
            );
            latencies.extend(r.alert_latency);
        }
        latencies.sort();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "completing request -> finding on gatehouse.alerts: n={} p50={:.0} ms p99={:.0} ms max={:.0} ms",
            latencies.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
        return ExitCode::SUCCESS;
    }
    let report = gatehouse_demo::run(&gatehouse, &examples, &mut out);
    if report.chains.trim().is_empty() {
        eprintln!("gatehouse-demo: `audit chains` found nothing");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
