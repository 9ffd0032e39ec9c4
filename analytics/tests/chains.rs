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
        // `since` keeps the chains that start at or after it, and only those.
        let mut starts: Vec<String> = strings(&found, "started")
            .into_iter()
            .zip(strings(&found, "kind"))
            .filter(|(_, k)| k.as_deref() == Some("pg->ssh->k8s"))
            .map(|(t, _)| t.unwrap())
            .collect();
        starts.sort();
        let since = starts[starts.len() / 2].clone();
        let later = audit
            .chains(&ChainQuery {
                since: Some(since.clone()),
                partial: false,
                ..ChainQuery::default()
            })
            .await
            .unwrap();
        let later_starts = strings(&later, "started");
        assert_eq!(
            later_starts.len(),
            starts.iter().filter(|t| **t >= since).count(),
            "since {since}: {later_starts:?}"
        );
        assert!(
            later_starts
                .iter()
                .all(|t| t.as_deref().unwrap() >= since.as_str())
        );
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

/// The chain hunt as it was first written (a nested-loop join of results against
/// host names, then plain range joins): slow, but straightforward, so the optimized
/// query is checked against it.
fn reference_sql(secs: u64) -> String {
    format!(
        "WITH hop AS (\n\
           SELECT identity, time AS t2, event_id AS hop_event, ssh_host AS host, session_id AS s2,\n\
                  CASE WHEN cardinality(ssh_hosts) > 0 THEN ssh_hosts\n\
                       ELSE [lower(ssh_host), regexp_replace(lower(ssh_host), '^([^.]*[a-z_-][^.]*)[.].*$', '\\1.*')] END AS hosts\n\
           FROM events\n\
           WHERE event_type = 'request_observed' AND protocol = 'ssh' AND action = 'session_open' \n\
         ), pod AS (\n\
           SELECT identity, time AS t3, event_id AS pod_event, session_id AS s3\n\
           FROM events\n\
           WHERE event_type = 'request_observed' AND ((protocol = 'kubernetes' \n\
             AND ((action = 'create' AND k8s_resource = 'pods') OR k8s_subresource IN ('exec', 'attach')))\n\
             OR (protocol = 'ssh' AND array_has(ssh_pivot, 'kubernetes')))\n\
         ), tokens AS (\n\
           SELECT identity, time, request_event_id, session_id, captured_values, captured_hosts,\n\
                  trim(regexp_replace(regexp_replace(regexp_replace(lower(coalesce(result_sample, '')),\n\
                    '[^a-z0-9._:-]+', ' ', 'g'), '[.:]+( |$)', ' ', 'g'), '(^| )[.:]+', ' ', 'g')) AS t\n\
           FROM events\n\
           WHERE event_type = 'result_observed' AND protocol = 'postgres'\n\
         ), recon AS (\n\
           SELECT identity, time AS t1, request_event_id AS recon_event, session_id AS s1,\n\
                  array_concat(captured_values, coalesce(captured_hosts, captured_values),\n\
                    string_to_array(t, ' '),\n\
                    string_to_array(regexp_replace(t, '([^ .]+)[.][^ ]*', '\\1', 'g'), ' '),\n\
                    string_to_array(regexp_replace(t, '([^ ]+)', '\\1.*', 'g'), ' ')) AS keys\n\
           FROM tokens\n\
         ), recon_hop AS (\n\
           SELECT DISTINCT r.identity, h.host, r.t1, h.t2, r.recon_event, h.hop_event, r.s1, h.s2\n\
           FROM recon r JOIN hop h ON h.identity = r.identity AND array_has_any(r.keys, h.hosts)\n\
             AND h.t2 > r.t1 AND h.t2 <= r.t1 + INTERVAL '{secs} seconds'\n\
         ), candidates AS (\n\
           SELECT CASE WHEN p.pod_event IS NULL THEN 'pg->ssh' ELSE 'pg->ssh->k8s' END AS kind,\n\
                  rh.identity, rh.host, rh.t1 AS started, coalesce(p.t3, rh.t2) AS ended,\n\
                  rh.recon_event, rh.hop_event, p.pod_event,\n\
                  CASE WHEN p.pod_event IS NULL THEN concat_ws(',', rh.s1, rh.s2)\n\
                       ELSE concat_ws(',', rh.s1, rh.s2, p.s3) END AS sessions\n\
           FROM recon_hop rh LEFT JOIN pod p ON p.identity = rh.identity\n\
             AND p.t3 > rh.t2 AND p.t3 <= rh.t1 + INTERVAL '{secs} seconds'\n\
           UNION ALL\n\
           SELECT 'ssh->k8s' AS kind, h.identity, h.host, h.t2 AS started, p.t3 AS ended,\n\
                  CAST(NULL AS VARCHAR) AS recon_event, h.hop_event, p.pod_event,\n\
                  concat_ws(',', h.s2, p.s3) AS sessions\n\
           FROM hop h JOIN pod p ON p.identity = h.identity\n\
             AND p.t3 > h.t2 AND p.t3 <= h.t2 + INTERVAL '{secs} seconds'\n\
         ), ranked AS (\n\
           SELECT *,\n\
                  max(CASE WHEN kind = 'pg->ssh->k8s' THEN 1 ELSE 0 END) OVER (PARTITION BY hop_event) AS hop_in_full,\n\
                  max(CASE WHEN kind = 'pg->ssh->k8s' THEN 1 ELSE 0 END) OVER (PARTITION BY pod_event) AS pod_in_full\n\
           FROM candidates\n\
         )\n\
         SELECT kind, identity, host, started, ended, recon_event, hop_event, pod_event, sessions\n\
         FROM ranked\n\
         WHERE kind = 'pg->ssh->k8s' OR (kind = 'pg->ssh' AND hop_in_full = 0) OR (kind = 'ssh->k8s' AND pod_in_full = 0)\n\
         ORDER BY started, identity, kind, hop_event, pod_event"
    )
}

/// The `ORDER BY` columns of a row of [`rows`]: started, identity, kind, hop_event,
/// pod_event.
fn order_key(row: &str) -> String {
    let f: Vec<&str> = row.split(" | ").collect();
    [f[3], f[1], f[0], f[6], f[7]].join(" | ")
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let columns = [
        "kind",
        "identity",
        "host",
        "started",
        "ended",
        "recon_event",
        "hop_event",
        "pod_event",
        "sessions",
    ];
    let cols: Vec<Vec<Option<String>>> = columns.iter().map(|c| strings(batches, c)).collect();
    (0..cols[0].len())
        .map(|i| {
            cols.iter()
                .map(|c| c[i].clone().unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

/// Dense traffic (few identities, many chains, overlapping windows) so that every
/// kind, window edge and suppression case occurs; the optimized query must return
/// exactly what the reference query returns, for several windows, with and without
/// partial chains.
#[test]
fn the_optimized_chain_query_matches_the_reference_query() {
    let spec = HistorySpec {
        identities: 6,
        benign_events: 30_000,
        chains: 40,
        span: Duration::hours(6),
        ..HistorySpec::default()
    };
    let (events, _planted) = history(&spec);
    let tmp = tempfile::tempdir().unwrap();
    write_audit(tmp.path(), &events, 3_000);
    rt().block_on(async {
        let audit = Audit::open(tmp.path()).await.unwrap();
        let mut kinds_seen = BTreeSet::new();
        for secs in [300u64, 540, 1_800, 7_200] {
            let mut reference = rows(&audit.sql(&reference_sql(secs)).await.unwrap());
            reference.sort();
            assert!(!reference.is_empty(), "window {secs} s: nothing to compare");
            let query = ChainQuery {
                within: std::time::Duration::from_secs(secs),
                ..ChainQuery::default()
            };
            // The sweep (what `audit chains` runs) returns the rows in the SQL's order.
            let swept = rows(&audit.chains(&query).await.unwrap());
            let mut found = swept.clone();
            found.sort();
            assert_eq!(found, reference, "sweep, window {secs} s");
            let in_sql = rows(&audit.chains_sql(&query).await.unwrap());
            let mut sorted = in_sql.clone();
            sorted.sort();
            assert_eq!(sorted, reference, "optimized SQL, window {secs} s");
            assert_eq!(
                swept.iter().map(|r| order_key(r)).collect::<Vec<_>>(),
                in_sql.iter().map(|r| order_key(r)).collect::<Vec<_>>(),
                "ORDER BY started, identity, kind, hop_event, pod_event, window {secs} s"
            );
            for r in &found {
                kinds_seen.insert(r.split(" | ").next().unwrap().to_owned());
            }
            // Full chains only: the reference's full rows.
            let full_only = ChainQuery {
                partial: false,
                ..query.clone()
            };
            let reference_full: Vec<String> = reference
                .iter()
                .filter(|r| r.starts_with("pg->ssh->k8s |"))
                .cloned()
                .collect();
            for (how, batches) in [
                ("sweep", audit.chains(&full_only).await.unwrap()),
                ("SQL", audit.chains_sql(&full_only).await.unwrap()),
            ] {
                let mut full = rows(&batches);
                full.sort();
                assert_eq!(full, reference_full, "{how}, full only, window {secs} s");
            }
            // `since`: both return the same subset, starting at the median start.
            let mut starts: Vec<&str> = found
                .iter()
                .map(|r| r.split(" | ").nth(3).unwrap())
                .collect();
            starts.sort_unstable();
            let since = starts[starts.len() / 2].replace(' ', "T");
            let later = ChainQuery {
                since: Some(since.clone()),
                ..query
            };
            let mut a = rows(&audit.chains(&later).await.unwrap());
            let mut b = rows(&audit.chains_sql(&later).await.unwrap());
            a.sort();
            b.sort();
            assert!(
                !a.is_empty() && a.len() < found.len(),
                "since {since}: {} of {}",
                a.len(),
                found.len()
            );
            assert_eq!(a, b, "since {since}, window {secs} s");
        }
        assert_eq!(
            kinds_seen.len(),
            3,
            "the history must exercise every chain kind: {kinds_seen:?}"
        );
    });
}
