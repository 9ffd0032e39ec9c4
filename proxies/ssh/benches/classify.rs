//! Cost of judging a command line's text: `shell::classify` on a typical 100-byte
//! exec line and on a 64 KiB script, timed one call at a time; prints p50, p99 and
//! max. Run with `cargo bench -p gatehouse-proxy-ssh --bench classify --profile
//! bench-fast`.

use std::time::{Duration, Instant};

use gatehouse_proxy_ssh::shell::{Origin, classify, classify_as};

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    (at(0.5), at(0.99), v.last().copied().unwrap_or_default())
}

fn time(name: &str, text: &str, origin: Origin, runs: usize) {
    for _ in 0..runs / 10 + 1 {
        std::hint::black_box(classify_as(text, origin));
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(classify_as(std::hint::black_box(text), origin));
        samples.push(t.elapsed());
    }
    let (p50, p99, max) = percentiles(samples);
    println!(
        "{name:<44} {:>6} bytes  p50 {p50:>10.1?}  p99 {p99:>10.1?}  max {max:>10.1?}  ({runs} runs)",
        text.len()
    );
}

fn main() {
    let line = "cd /var/log/app && grep -E 'error|fatal' service.log | tail -n 50 | sort | uniq -c > /tmp/errs.txt";
    assert!((90..=110).contains(&line.len()), "{}", line.len());
    let c = classify(line);
    assert!(c.dynamic.is_none() && c.programs.len() == 5, "{c:?}");
    let lines = [
        "set -euo pipefail",
        "for f in /var/log/app/*.log; do",
        "  if grep -q 'panic' \"$f\"; then echo \"found in $f\"; fi",
        "done",
        "tar czf /tmp/logs-$(date +%F).tgz /var/log/app 2>/dev/null || true",
        "cat <<EOF > /tmp/report.txt",
        "host: $(hostname)",
        "EOF",
        "systemctl status nginx --no-pager | head -n 20",
        "find /tmp -name '*.tmp' -mtime +7 -exec rm -f {} \\;",
        "awk '{ s += $3 } END { print s }' /var/log/app/metrics.csv",
        "sudo -u www-data php artisan cache:clear",
    ];
    let mut script = String::new();
    while script.len() < 64 * 1024 - 200 {
        for l in lines {
            script.push_str(l);
            script.push('\n');
        }
    }
    let script: String = script
        .lines()
        .take_while({
            let mut n = 0usize;
            move |l| {
                n += l.len() + 1;
                n <= 64 * 1024
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let runs_line = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20_000);
    time("typical exec line", line, Origin::Exec, runs_line);
    time("typical shell line", line, Origin::ShellLine, runs_line);
    time(
        "64 KiB script (one exec command line)",
        &script,
        Origin::Exec,
        200,
    );
    let c = classify(&script);
    println!(
        "  script: {} simple commands, {} programs, dynamic: {:?}",
        c.commands.len(),
        c.programs.len(),
        c.dynamic
    );
}
