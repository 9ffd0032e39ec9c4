//! The hunt and the views over generated histories.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::Duration;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use gatehouse_analytics::Audit;
use gatehouse_analytics::chains::ChainQuery;
use gatehouse_events::synth::{HistorySpec, history};
use gatehouse_events::{Event, arrow};

/// Writes events hive-partitioned like the shipper does, in files of `per_file`.
fn write_audit(dir: &Path, events: &[Event], per_file: usize) {
    let mut parts: BTreeMap<(String, String), Vec<Event>> = BTreeMap::new();
    for e in events {
        let day = e.time.format("%Y-%m-%d").to_string();
        let proto = e
            .protocol
            .map(|p| p.as_str())
            .unwrap_or("control")
            .to_owned();
        parts.entry((day, proto)).or_default().push(e.clone());
    }
    for ((day, proto), evs) in parts {
        let d = dir
            .join(format!("day={day}"))
            .join(format!("proto={proto}"));
        std::fs::create_dir_all(&d).unwrap();
        for (i, chunk) in evs.chunks(per_file).enumerate() {
            let batch = arrow::to_record_batch(chunk).unwrap();
            let f = std::fs::File::create(d.join(format!("part-{i:05}.parquet"))).unwrap();
            let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
    }
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let c = b.column_by_name(column).unwrap();
        let c = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
            .unwrap();
        let s = c.as_string::<i32>();
        for i in 0..s.len() {
            out.push((!s.is_null(i)).then(|| s.value(i).to_owned()));
        }
    }
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn chains_are_found_among_interleaved_benign_traffic() {
    let spec = HistorySpec {
        identities: 30,
        benign_events: 20_000,
        chains: 4,
        span: Duration::hours(3),
        ..HistorySpec::default()
    };
    let (events, planted) = history(&spec);
    let tmp = tempfile::tempdir().unwrap();
    write_audit(tmp.path(), &events, 2_000);
    rt().block_on(async {
        let audit = Audit::open(tmp.path()).await.unwrap();
        let found = audit.chains(&ChainQuery::default()).await.unwrap();
        let kinds = strings(&found, "kind");
        let hops = strings(&found, "hop_event");
        let pods = strings(&found, "pod_event");
        let recons = strings(&found, "recon_event");
        let full: BTreeSet<(String, String, String)> = kinds
            .iter()
            .zip(recons.iter().zip(hops.iter().zip(pods.iter())))
            .filter(|(k, _)| k.as_deref() == Some("pg->ssh->k8s"))
            .map(|(_, (r, (h, p)))| (r.clone().unwrap(), h.clone().unwrap(), p.clone().unwrap()))
            .collect();
        let expected: BTreeSet<(String, String, String)> = planted
            .iter()
            .map(|c| (c.recon.to_string(), c.hop.to_string(), c.pod.to_string()))
            .collect();
        assert_eq!(full, expected, "full chains found vs planted");
        assert!(
            kinds.iter().all(|k| k.as_deref() == Some("pg->ssh->k8s")),
            "benign traffic produced a partial chain: {kinds:?}"
        );
        // A window shorter than the chains (9 minutes) finds only their first two steps.
        let short = audit
            .chains(&ChainQuery {
                within: std::time::Duration::from_secs(300),
                ..ChainQuery::default()
            })
            .await
            .unwrap();
        let kinds = strings(&short, "kind");
        assert_eq!(
            kinds
                .iter()
                .filter(|k| k.as_deref() == Some("pg->ssh"))
                .count(),
            planted.len(),
            "{kinds:?}"
        );
        assert!(!kinds.iter().any(|k| k.as_deref() == Some("pg->ssh->k8s")));
        // The same chains through plain SQL over the views.
        let n = audit
            .sql("SELECT count(*) AS n FROM ssh_commands WHERE kind = 'session_open'")
            .await
            .unwrap();
        assert!(
            strings(&n, "n")[0]
                .as_deref()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
    });
}

#[test]
fn benign_only_history_has_no_chains() {
    let spec = HistorySpec {
        identities: 30,
        benign_events: 20_000,
        chains: 0,
        ..HistorySpec::default()
    };
    let (events, _) = history(&spec);
    let tmp = tempfile::tempdir().unwrap();
    write_audit(tmp.path(), &events, 5_000);
    rt().block_on(async {
        let audit = Audit::open(tmp.path()).await.unwrap();
        let found = audit.chains(&ChainQuery::default()).await.unwrap();
        assert_eq!(found.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    });
}

#[test]
fn every_view_answers_and_duplicates_do_not_double_count() {
    let (events, planted) = history(&HistorySpec {
        benign_events: 3_000,
        chains: 2,
        ..HistorySpec::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    write_audit(tmp.path(), &events, 1_000);
    // At-least-once shipping: a second copy of some files.
    let dup = tmp
        .path()
        .join("day=2026-11-01/proto=postgres/part-00000.parquet");
    std::fs::copy(&dup, dup.with_file_name("part-99999.parquet")).unwrap();
    rt().block_on(async {
        let audit = Audit::open(tmp.path()).await.unwrap();
        for (view, _) in gatehouse_analytics::catalog::VIEWS {
            audit
                .sql(&format!("SELECT * FROM {view} LIMIT 5"))
                .await
                .unwrap_or_else(|e| panic!("view {view}: {e}"));
        }
        let n = audit
            .sql("SELECT count(*) AS n FROM events_dedup")
            .await
            .unwrap();
        assert_eq!(
            strings(&n, "n")[0].as_deref(),
            Some(events.len().to_string().as_str())
        );
        let ids = audit
            .sql("SELECT count(DISTINCT event_id) AS n FROM events")
            .await
            .unwrap();
        assert_eq!(
            strings(&ids, "n")[0].as_deref(),
            Some(events.len().to_string().as_str())
        );
        let found = audit.chains(&ChainQuery::default()).await.unwrap();
        let pods: BTreeSet<_> = strings(&found, "pod_event").into_iter().flatten().collect();
        assert_eq!(
            pods.len(),
            planted.len(),
            "duplicated files must not invent chains"
        );
        // Partition pruning: a day filter that matches nothing reads nothing.
        let none = audit
            .sql("SELECT count(*) AS n FROM events WHERE day = '1999-01-01'")
            .await
            .unwrap();
        assert_eq!(strings(&none, "n")[0].as_deref(), Some("0"));
    });
}

#[test]
fn the_documented_datafusion_cli_statement_reads_the_files() {
    let (events, _) = history(&HistorySpec {
        benign_events: 2_000,
        chains: 1,
        ..HistorySpec::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    write_audit(tmp.path(), &events, 700);
    rt().block_on(async {
        // Exactly the statement in docs/audit.md, in a plain DataFusion session.
        let ctx = datafusion::prelude::SessionContext::new();
        let doc =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit.md"))
                .unwrap();
        let ddl = doc
            .split("```sql\n")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let ddl = ddl.replace(
            "/var/lib/gatehouse/audit/",
            &format!("{}/", tmp.path().display()),
        );
        ctx.sql(&ddl).await.unwrap().collect().await.unwrap();
        let rows = ctx
            .sql("SELECT count(*) AS n FROM events")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            strings(&rows, "n")[0].as_deref(),
            Some(events.len().to_string().as_str())
        );
        let by_proto = ctx
            .sql("SELECT proto, count(*) FROM events GROUP BY proto")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(by_proto.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    });
}
