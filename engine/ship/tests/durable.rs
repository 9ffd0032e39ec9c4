#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

//! Shipping and power loss: shippers hand sinks only durable (fsynced) records, and a
//! cursor left past the log's end by a torn tail is moved back, with a record of it,
//! so that every new event still reaches the sink.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::log::{Durability, EventLog, LogConfig, LogReader, list_segments, record};
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, arrow, synth};
use gatehouse_ship::parquet::{ParquetOptions, ParquetSink};
use gatehouse_ship::{Cursor, ShipOptions, Source};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A log whose syncer never fsyncs on its own within a test: only `sync()` makes
/// records durable.
fn open_log(dir: &Path) -> Arc<EventLog> {
    let mut config = LogConfig::new(dir);
    config.durability = Durability::Batch {
        interval_ms: 3_600_000,
    };
    Arc::new(EventLog::open(config).unwrap())
}

fn options(cursors: &Path) -> ShipOptions {
    let mut o = ShipOptions::new(cursors);
    o.poll = Duration::from_millis(20);
    o.linger = Duration::from_millis(1);
    o.gateway_id = "gw-test".into();
    o
}

fn sink(audit: &Path) -> ParquetSink {
    let mut p = ParquetOptions::new(audit);
    p.max_age = Duration::from_millis(50);
    ParquetSink::new(p).unwrap()
}

fn shipped_ids(audit: &Path) -> HashSet<String> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    files(audit, &mut found);
    let mut ids = HashSet::new();
    for f in found {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            for e in arrow::from_record_batch(&batch.unwrap()).unwrap() {
                ids.insert(e.id.to_string());
            }
        }
    }
    ids
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shippers_hand_sinks_only_durable_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let (audit, cursors) = (tmp.path().join("audit"), tmp.path().join("cursors"));
    let log = open_log(&log_dir);
    let written: Vec<Event> = (0..100).map(|i| synth::sample(i, "gw-test")).collect();
    for e in &written {
        log.append(e).unwrap();
    }
    assert_eq!(log.durable_offset(), 0, "nothing is fsynced yet");

    let rt = runtime();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shipper = rt.spawn(gatehouse_ship::run(
        Source::Live(log.clone()),
        sink(&audit),
        options(&cursors),
        stopped,
    ));
    // Written but not durable: a power loss could still take these from the log, so
    // no sink may have them.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        shipped_ids(&audit).is_empty(),
        "records shipped before they were durable"
    );
    assert_eq!(Cursor::load(&cursors, "parquet").unwrap().next(), 0);

    log.sync().unwrap();
    wait_until("the durable records to be shipped", || {
        Cursor::load(&cursors, "parquet").unwrap().next() == 100
    });
    stop.send(true).unwrap();
    assert_eq!(rt.block_on(shipper).unwrap().unwrap(), 100);
    let ids = shipped_ids(&audit);
    assert_eq!(ids.len(), 100);
    assert!(written.iter().all(|e| ids.contains(&e.id.to_string())));
}

#[test]
fn synced_directory_readers_read_what_another_writer_wrote_and_fsync_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    for i in 0..10 {
        log.append(&synth::sample(i, "gw-test")).unwrap();
    }
    // The reader fsyncs the segment itself before reading: the records come back.
    let offsets: Vec<u64> = LogReader::open_synced(tmp.path(), 0)
        .map(|r| r.unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}

/// Cuts the log's last segment in the middle of record `offset`, as a power loss
/// leaves a file whose last pages were never written.
fn tear_at(dir: &Path, offset: u64) {
    let seg = list_segments(dir).unwrap().pop().unwrap();
    let bytes = std::fs::read(&seg.path).unwrap();
    let mut pos = record::SEGMENT_HEADER_LEN;
    loop {
        let rec = record::decode_record(&bytes[pos..]).unwrap();
        if rec.offset == offset {
            break;
        }
        pos += rec.encoded_len();
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap();
    file.set_len(pos as u64 + 20).unwrap();
}

#[test]
fn a_cursor_past_a_torn_tail_is_moved_back_recorded_and_new_events_all_ship() {
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let (audit, cursors) = (tmp.path().join("audit"), tmp.path().join("cursors"));
    let rt = runtime();

    // 70 events shipped: the cursor is at 70. (A build that shipped written records
    // could get here with the last 7 never fsynced.)
    {
        let log = open_log(&log_dir);
        for i in 0..70 {
            log.append(&synth::sample(i, "gw-test")).unwrap();
        }
        log.sync().unwrap();
        let mut o = options(&cursors);
        o.stop_at = Some(70);
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let next = rt
            .block_on(gatehouse_ship::run(
                Source::Live(log),
                sink(&audit),
                o,
                stopped,
            ))
            .unwrap();
        assert_eq!(next, 70);
    }
    let before = shipped_ids(&audit);
    assert_eq!(before.len(), 70);

    // Power loss: records 63.. never reached the disk. Recovery cuts the torn tail.
    tear_at(&log_dir, 63);
    let log = open_log(&log_dir);
    assert_eq!(log.opened_at(), 63);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shipper = rt.spawn(gatehouse_ship::run(
        Source::Live(log.clone()),
        sink(&audit),
        options(&cursors),
        stopped,
    ));
    wait_until("the rewind to be recorded", || log.next_offset() == 64);
    // New events reuse offsets 64..: every one of them must reach the sink.
    let new: Vec<Event> = (1000..1063).map(|i| synth::sample(i, "gw-test")).collect();
    for e in &new {
        log.append(e).unwrap();
    }
    log.sync().unwrap();
    let end = log.next_offset();
    wait_until("the new events to be shipped", || {
        Cursor::load(&cursors, "parquet").unwrap().next() == end
    });
    stop.send(true).unwrap();
    rt.block_on(shipper).unwrap().unwrap();

    let events: Vec<(u64, Event)> = LogReader::open(&log_dir, 0)
        .map(|r| {
            let r = r.unwrap();
            (r.offset, r.event().unwrap())
        })
        .collect();
    let (_, rewound) = &events[63];
    match &rewound.payload {
        Payload::ShipperRewound(w) => {
            assert_eq!((w.sink.as_str(), w.cursor, w.log_end), ("parquet", 70, 63));
        }
        other => panic!("offset 63 should record the rewind, found {other:?}"),
    }
    assert_eq!(rewound.gateway_id, "gw-test");
    let ids = shipped_ids(&audit);
    for (offset, e) in &events[63..] {
        assert!(
            ids.contains(&e.id.to_string()),
            "the event at offset {offset} never reached Parquet"
        );
    }
    // The sink still holds the 7 records the log lost, and the log says so.
    assert_eq!(ids.len(), 70 + 1 + new.len());
}
