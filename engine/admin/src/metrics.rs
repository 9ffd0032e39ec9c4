//! Prometheus text exposition.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::routes::router;

type AppState = std::sync::Arc<crate::AdminState>;

fn cursor(dir: &std::path::Path, sink: &str) -> Option<u64> {
    let bytes = std::fs::read(dir.join(format!("{sink}.cursor"))).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("next_offset")?
        .as_u64()
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let _ = router;
    let e = &s.engine;
    let m = e.metrics();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP gatehouse_decisions_total Requests decided, by effect.\n# TYPE gatehouse_decisions_total counter"
    );
    for (i, effect) in ["allow", "mask", "require_approval", "block"]
        .iter()
        .enumerate()
    {
        let n = m
            .decisions
            .get(i)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0);
        let _ = writeln!(out, "gatehouse_decisions_total{{effect=\"{effect}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP gatehouse_auth_failures_total Refused credentials.\n# TYPE gatehouse_auth_failures_total counter"
    );
    let _ = writeln!(
        out,
        "gatehouse_auth_failures_total {}",
        m.auth_failures.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP gatehouse_sessions_opened_total Sessions opened.\n# TYPE gatehouse_sessions_opened_total counter"
    );
    let _ = writeln!(
        out,
        "gatehouse_sessions_opened_total {}",
        m.sessions_opened.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP gatehouse_sessions_live Live sessions.\n# TYPE gatehouse_sessions_live gauge"
    );
    let _ = writeln!(out, "gatehouse_sessions_live {}", e.sessions().len());
    let _ = writeln!(
        out,
        "# HELP gatehouse_approvals_pending Requests waiting for a reviewer.\n# TYPE gatehouse_approvals_pending gauge"
    );
    let _ = writeln!(
        out,
        "gatehouse_approvals_pending {}",
        e.approvals().list().len()
    );
    let next = e.log().next_offset();
    let durable = e.log().durable_offset();
    let failure = e.log().failure();
    let stats = e.log().stats();
    let _ = writeln!(
        out,
        "# HELP gatehouse_ready Whether the gateway can judge and record commands (the event log accepts appends): 1 or 0.\n# TYPE gatehouse_ready gauge"
    );
    let _ = writeln!(out, "gatehouse_ready {}", u8::from(failure.is_none()));
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_writable Whether the event log accepts appends: 1 or 0 (every command is refused while 0).\n# TYPE gatehouse_log_writable gauge"
    );
    let _ = writeln!(
        out,
        "gatehouse_log_writable {}",
        u8::from(failure.is_none())
    );
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_failures_total Times the event log failed (a write or an fsync).\n# TYPE gatehouse_log_failures_total counter"
    );
    let _ = writeln!(out, "gatehouse_log_failures_total {}", stats.failures);
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_refused_appends_total Appends refused because the event log was failed.\n# TYPE gatehouse_log_refused_appends_total counter"
    );
    let _ = writeln!(
        out,
        "gatehouse_log_refused_appends_total {}",
        stats.refused_appends
    );
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_recoveries_total Times the event log recovered from a failure without a restart.\n# TYPE gatehouse_log_recoveries_total counter"
    );
    let _ = writeln!(out, "gatehouse_log_recoveries_total {}", stats.recoveries);
    let _ = writeln!(
        out,
        "# HELP gatehouse_upstream_up Whether the last TCP probe of a target's upstream connected: 1, 0, or absent before the first probe.\n# TYPE gatehouse_upstream_up gauge"
    );
    for u in s.upstreams.snapshot() {
        if let Some(up) = u.reachable {
            let _ = writeln!(
                out,
                "gatehouse_upstream_up{{target=\"{}\",protocol=\"{}\"}} {}",
                escape(&u.target),
                u.protocol,
                u8::from(up)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_next_offset Records appended to the event log.\n# TYPE gatehouse_log_next_offset counter"
    );
    let _ = writeln!(out, "gatehouse_log_next_offset {next}");
    let _ = writeln!(
        out,
        "# HELP gatehouse_log_unsynced_records Records written but not yet fsynced (log lag).\n# TYPE gatehouse_log_unsynced_records gauge"
    );
    let _ = writeln!(
        out,
        "gatehouse_log_unsynced_records {}",
        next.saturating_sub(durable)
    );
    let _ = writeln!(
        out,
        "# HELP gatehouse_shipper_lag_records Records not yet shipped, per sink.\n# TYPE gatehouse_shipper_lag_records gauge"
    );
    let cursors = s.config.data_dir.join("cursors");
    for sink in ["parquet", "kafka"] {
        let enabled = match sink {
            "parquet" => s.config.shipping.parquet.enabled,
            _ => s.config.shipping.kafka.is_some(),
        };
        if enabled {
            let at = cursor(&cursors, sink).unwrap_or(0);
            let _ = writeln!(
                out,
                "gatehouse_shipper_lag_records{{sink=\"{sink}\"}} {}",
                next.saturating_sub(at)
            );
        }
    }
    if let Some(status) = e.cluster_status().await {
        cluster(&mut out, status);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The cluster fold's lag (ADR 0025); `gatehouse_cluster_up 0` when the broker
/// could not be asked.
fn cluster(out: &mut String, status: Result<gatehouse_core::engine::ClusterStatus, String>) {
    let _ = writeln!(
        out,
        "# HELP gatehouse_cluster_up Whether the cluster's broker answered for this scrape: 1 or 0.\n# TYPE gatehouse_cluster_up gauge"
    );
    let status = match status {
        Ok(s) => s,
        Err(_) => {
            let _ = writeln!(out, "gatehouse_cluster_up 0");
            return;
        }
    };
    let _ = writeln!(out, "gatehouse_cluster_up 1");
    let _ = writeln!(
        out,
        "# HELP gatehouse_cluster_lag_records Records of the events topic not yet folded, per partition.\n# TYPE gatehouse_cluster_lag_records gauge"
    );
    for p in &status.partitions {
        let _ = writeln!(
            out,
            "gatehouse_cluster_lag_records{{partition=\"{}\"}} {}",
            p.partition, p.lag
        );
    }
    let _ = writeln!(
        out,
        "# HELP gatehouse_cluster_replication_delay_seconds Time from an event made on another gateway to its fold here, over the last 4096 events.\n# TYPE gatehouse_cluster_replication_delay_seconds gauge"
    );
    for (q, v) in [
        ("0.5", status.delay.p50_ms),
        ("0.99", status.delay.p99_ms),
        ("1", status.delay.max_ms),
    ] {
        if let Some(ms) = v {
            let _ = writeln!(
                out,
                "gatehouse_cluster_replication_delay_seconds{{quantile=\"{q}\"}} {}",
                ms / 1000.0
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP gatehouse_cluster_member_events_folded_total Events of another gateway folded here since start.\n# TYPE gatehouse_cluster_member_events_folded_total counter"
    );
    for m in &status.members {
        let _ = writeln!(
            out,
            "gatehouse_cluster_member_events_folded_total{{gateway=\"{}\"}} {}",
            escape(&m.gateway_id),
            m.events
        );
    }
}
