#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

//! The Parquet shipper, end to end on a real log: every event comes back exactly once,
//! byte for byte, in the partition it belongs to, whatever the batch and roll sizes.

use std::collections::HashMap;
use std::path::Path;

use gatehouse_core::log::{EventLog, LogConfig, LogReader};
use gatehouse_events::{Event, Protocol, arrow, synth};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink, RemoteAudit};
use gatehouse_ship::{ShipOptions, Source};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn parquet_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            parquet_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn ship(log_dir: &Path, audit: &Path, cursors: &Path, batch: usize, max_rows: usize, n: u64) {
    ship_with(log_dir, audit, cursors, batch, max_rows, n, None);
}

fn ship_with(
    log_dir: &Path,
    audit: &Path,
    cursors: &Path,
    batch: usize,
    max_rows: usize,
    n: u64,
    remote: Option<RemoteAudit>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = ShipOptions::new(cursors);
    opts.stop_at = Some(n);
    opts.batch = batch;
    let mut p = ParquetOptions::new(audit);
    p.max_rows = max_rows;
    p.remote = remote;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let shipped = rt
        .block_on(gatehouse_ship::run(
            Source::Dir(log_dir.to_owned()),
            ParquetSink::new(p).unwrap(),
            opts,
            rx,
        ))
        .unwrap();
    assert_eq!(shipped, n);
}

#[test]
fn every_event_comes_back_once_and_exactly_in_its_partition() {
    const N: u64 = 23_457;
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let mut written: Vec<Event> = Vec::new();
    {
        let log = EventLog::open(LogConfig::new(&log_dir)).unwrap();
        for i in 0..N {
            let mut e = synth::sample(i, "gw-test");
            if i % 5 == 0 {
                // Control events (no protocol) and another day: more partitions.
                e.protocol = None;
                e.time -= chrono::Duration::days(1);
            }
            log.append(&e).unwrap();
            written.push(e);
        }
    }
    // Odd batch and roll sizes: batches straddle files, files straddle batches.
    for (batch, max_rows) in [(1000, 7_001), (4096, 200_000), (17, 2_500)] {
        let audit = tmp.path().join(format!("audit-{batch}-{max_rows}"));
        let cursors = tmp.path().join(format!("cursors-{batch}-{max_rows}"));
        ship(&log_dir, &audit, &cursors, batch, max_rows, N);

        let mut files = Vec::new();
        parquet_files(&audit, &mut files);
        assert!(
            files
                .iter()
                .all(|f| f.extension().is_some_and(|x| x == "parquet"))
        );
        let mut back: HashMap<String, Event> = HashMap::new();
        for file in &files {
            let rel = file
                .strip_prefix(&audit)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            let mut last_id = None;
            for batch in reader {
                let batch = batch.unwrap();
                let json = batch
                    .column_by_name("payload_json")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap()
                    .clone();
                for (row, event) in arrow::from_record_batch(&batch)
                    .unwrap()
                    .into_iter()
                    .enumerate()
                {
                    // In log order within a file (ids are time-ordered UUIDv7).
                    let id = event.id.to_string();
                    assert!(
                        last_id.as_ref().is_none_or(|l: &String| *l < id),
                        "{rel}: out of order"
                    );
                    last_id = Some(id.clone());
                    let proto = event.protocol.map_or("control", Protocol::as_str);
                    let day = event.time.date_naive().format("%Y-%m-%d").to_string();
                    assert!(
                        rel.starts_with(&format!("day={day}/proto={proto}/")),
                        "{rel} holds an event of {day}/{proto}"
                    );
                    assert_eq!(
                        json.value(row),
                        serde_json::to_string(&event.payload).unwrap()
                    );
                    assert!(back.insert(id, event).is_none(), "{rel}: duplicate");
                }
            }
        }
        assert_eq!(back.len() as u64, N, "batch {batch}, roll {max_rows}");
        for e in &written {
            assert_eq!(back.get(&e.id.to_string()), Some(e));
        }
        // The cursor is at the end: shipping again writes nothing new.
        let before = files.len();
        ship(&log_dir, &audit, &cursors, batch, max_rows, N);
        let mut again = Vec::new();
        parquet_files(&audit, &mut again);
        assert_eq!(again.len(), before);
    }
    // The log itself is untouched.
    let mut reader = LogReader::open(&log_dir, 0);
    let mut count = 0;
    while reader.next_event().unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, N);
}

/// With a shared audit, every finished file goes to the object store under its
/// partition, named with the gateway's id; nothing stays in the local directory, and
/// every event is in the store exactly once.
#[test]
fn a_shared_audit_puts_every_event_in_the_store_once_under_the_gateways_name() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    const N: u64 = 9_001;
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let mut written = Vec::new();
    {
        let log = EventLog::open(LogConfig::new(&log_dir)).unwrap();
        for i in 0..N {
            let mut e = synth::sample(i, "gw-a");
            if i % 3 == 0 {
                e.protocol = None;
            }
            log.append(&e).unwrap();
            written.push(e);
        }
    }
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let remote = RemoteAudit {
        store: store.clone(),
        prefix: object_store::path::Path::from("audit/cluster-1"),
        gateway_id: "gw-a".into(),
    };
    let staging = tmp.path().join("staging");
    ship_with(
        &log_dir,
        &staging,
        &tmp.path().join("cursors"),
        1000,
        2_500,
        N,
        Some(remote),
    );
    let mut left = Vec::new();
    parquet_files(&staging, &mut left);
    assert!(
        left.is_empty(),
        "files left in the staging directory: {left:?}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let objects: Vec<_> = rt
        .block_on(
            store
                .list(Some(&object_store::path::Path::from("audit/cluster-1")))
                .try_collect(),
        )
        .unwrap();
    assert!(objects.len() >= 4, "{} objects", objects.len());
    let mut back: HashMap<String, Event> = HashMap::new();
    for meta in objects {
        let name = meta.location.to_string();
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts.len(), 5, "{name}");
        assert!(parts[2].starts_with("day=") && parts[3].starts_with("proto="));
        assert!(
            parts[4].starts_with("part-gw-a-") && parts[4].ends_with(".parquet"),
            "{name}"
        );
        let bytes = rt
            .block_on(async { store.get(&meta.location).await?.bytes().await })
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            for event in arrow::from_record_batch(&batch.unwrap()).unwrap() {
                let proto = event.protocol.map_or("control", Protocol::as_str);
                assert_eq!(parts[3], format!("proto={proto}"), "{name}");
                assert!(
                    back.insert(event.id.to_string(), event).is_none(),
                    "{name}: duplicate"
                );
            }
        }
    }
    assert_eq!(back.len() as u64, N);
    for e in &written {
        assert_eq!(back.get(&e.id.to_string()), Some(e));
    }
}
