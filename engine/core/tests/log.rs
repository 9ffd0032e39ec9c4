//! Event log behaviour: append/read, rotation, recovery, verification, retention.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::log::{
    Durability, EventLog, LogConfig, LogError, LogReader, Retention, list_segments, verify,
};
use gatehouse_events::{Event, synth};

fn events(n: u64) -> Vec<Event> {
    (0..n).map(|i| synth::sample(i, "gw-test")).collect()
}

fn config(dir: &std::path::Path) -> LogConfig {
    LogConfig::new(dir)
}

fn read_all(dir: &std::path::Path) -> Vec<Event> {
    LogReader::open(dir, 0)
        .map(|r| r.unwrap().event().unwrap())
        .collect()
}

#[test]
fn appended_events_read_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let log = EventLog::open(config(tmp.path())).unwrap();
    let evs = events(500);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(log.append(e).unwrap(), i as u64);
    }
    assert_eq!(log.next_offset(), 500);
    let back: Vec<Event> = log.reader(0).map(|r| r.unwrap().event().unwrap()).collect();
    assert_eq!(back, evs);
    // Replay from any offset.
    let mut r = log.reader(123);
    let (off, e) = r.next_event().unwrap().unwrap();
    assert_eq!((off, &e), (123, &evs[123]));
}

#[test]
fn batches_are_contiguous_and_reopen_continues_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let evs = events(300);
    {
        let log = EventLog::open(config(tmp.path())).unwrap();
        assert_eq!(log.append_batch(&evs[..100]).unwrap(), 0..100);
        assert_eq!(log.append_batch(&evs[100..101]).unwrap(), 100..101);
    }
    {
        let log = EventLog::open(config(tmp.path())).unwrap();
        assert_eq!(log.next_offset(), 101);
        assert_eq!(log.append_batch(&evs[101..]).unwrap(), 101..300);
    }
    assert_eq!(read_all(tmp.path()), evs);
    let report = verify(tmp.path()).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, 300);
}

#[test]
fn segments_rotate_and_readers_cross_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.segment_bytes = 16 * 1024;
    let evs = events(2000);
    {
        let log = EventLog::open(cfg.clone()).unwrap();
        for e in &evs {
            log.append(e).unwrap();
        }
    }
    let segs = list_segments(tmp.path()).unwrap();
    assert!(
        segs.len() > 10,
        "expected rotation, got {} segments",
        segs.len()
    );
    assert_eq!(read_all(tmp.path()), evs);
    let report = verify(tmp.path()).unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    assert_eq!(report.segments, segs.len());
    // Start in the middle of a later segment.
    let from = segs[5].base + 3;
    let mut r = LogReader::open(tmp.path(), from);
    assert_eq!(r.next_event().unwrap().unwrap().1, evs[from as usize]);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let evs = events(50);
    {
        let log = EventLog::open(config(tmp.path())).unwrap();
        log.append_batch(&evs).unwrap();
    }
    let seg = list_segments(tmp.path()).unwrap().pop().unwrap().path;
    let good_len = fs::metadata(&seg).unwrap().len();
    // A record whose header made it but whose payload did not.
    let mut partial = Vec::new();
    gatehouse_core::log::record::encode_record(&mut partial, 50, &[1; 32], b"{\"half\":");
    partial.truncate(partial.len() - 3);
    fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&partial)
        .unwrap();
    assert!(verify(tmp.path()).unwrap().problem.is_some());

    let log = EventLog::open(config(tmp.path())).unwrap();
    assert_eq!(log.next_offset(), 50);
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    log.append(&evs[0]).unwrap();
    drop(log);
    assert_eq!(verify(tmp.path()).unwrap().problem, None);
    assert_eq!(read_all(tmp.path()).len(), 51);
}

#[test]
fn zero_filled_tail_is_torn_not_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(config(tmp.path())).unwrap();
        log.append_batch(&events(10)).unwrap();
    }
    let seg = list_segments(tmp.path()).unwrap().pop().unwrap().path;
    fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    let log = EventLog::open(config(tmp.path())).unwrap();
    assert_eq!(log.next_offset(), 10);
}

#[test]
fn corruption_before_valid_records_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = EventLog::open(config(tmp.path())).unwrap();
        log.append_batch(&events(20)).unwrap();
    }
    let seg = list_segments(tmp.path()).unwrap().pop().unwrap().path;
    let mut bytes = fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    match EventLog::open(config(tmp.path())) {
        Err(LogError::Corrupt { offset, .. }) => {
            assert!(offset > 0 && offset < 20, "offset {offset}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a corrupt log"),
    }
    // Nothing was truncated.
    assert_eq!(fs::read(&seg).unwrap(), bytes);
}

#[test]
fn verify_names_the_offset_of_a_flipped_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.segment_bytes = 8 * 1024;
    {
        let log = EventLog::open(cfg).unwrap();
        for e in events(200) {
            log.append(&e).unwrap();
        }
    }
    let segs = list_segments(tmp.path()).unwrap();
    // Map each byte of a middle segment to the offset of the record holding it.
    let seg = &segs[segs.len() / 2];
    let pristine = fs::read(&seg.path).unwrap();
    let mut record_starts = Vec::new();
    let mut pos = 52usize;
    let mut off = seg.base;
    while pos < pristine.len() {
        let rec = gatehouse_core::log::record::decode_record(&pristine[pos..]).unwrap();
        record_starts.push((pos, pos + rec.encoded_len(), off));
        pos += rec.encoded_len();
        off += 1;
    }
    for &(start, end, offset) in record_starts.iter().step_by(3) {
        for flip in [start, start + 5, start + 20, (start + end) / 2, end - 1] {
            let mut bytes = pristine.clone();
            bytes[flip] ^= 0x10;
            fs::write(&seg.path, &bytes).unwrap();
            let report = verify(tmp.path()).unwrap();
            let problem = report
                .problem
                .unwrap_or_else(|| panic!("flip at {flip} not detected"));
            assert_eq!(
                problem.offset, offset,
                "flip at byte {flip}: {}",
                problem.reason
            );
            assert_eq!(problem.segment, seg.path);
        }
    }
    fs::write(&seg.path, &pristine).unwrap();
    assert_eq!(verify(tmp.path()).unwrap().problem, None);
}

#[test]
fn strict_mode_group_commits_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.durability = Durability::Strict;
    let log = Arc::new(EventLog::open(cfg).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut offsets = Vec::new();
                for i in 0..200 {
                    offsets.push(log.append(&synth::sample(t * 1000 + i, "gw")).unwrap());
                }
                offsets
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..800).collect::<Vec<_>>());
    drop(log);
    assert_eq!(verify(tmp.path()).unwrap().records, 800);
}

#[tokio::test]
async fn async_append_and_tailing_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.durability = Durability::Strict;
    let log = Arc::new(EventLog::open(cfg).unwrap());
    let mut reader = log.reader(0);
    assert!(reader.next_record().unwrap().is_none());
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                log.append_batch_async(&[synth::sample(i, "gw")])
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut seen = 0;
    while seen < 50 {
        reader.wait().await.unwrap();
        while let Some(r) = reader.next_record().unwrap() {
            assert_eq!(r.offset, seen);
            seen += 1;
        }
    }
    writer.await.unwrap();
}

#[test]
fn a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _log = EventLog::open(config(tmp.path())).unwrap();
    assert!(matches!(
        EventLog::open(config(tmp.path())),
        Err(LogError::Locked(_))
    ));
}

#[test]
fn retention_removes_only_shipped_old_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.segment_bytes = 8 * 1024;
    cfg.retention = Retention {
        max_age: None,
        max_bytes: Some(40 * 1024),
    };
    let log = EventLog::open(cfg).unwrap();
    for e in events(1000) {
        log.append(&e).unwrap();
    }
    let before = list_segments(tmp.path()).unwrap();
    // Nothing shipped yet: nothing may go.
    assert!(log.apply_retention(0).unwrap().is_empty());
    let keep_from = before[before.len() / 2].base;
    let removed = log.apply_retention(keep_from).unwrap();
    assert!(!removed.is_empty());
    let after = list_segments(tmp.path()).unwrap();
    assert!(after.first().unwrap().base <= keep_from);
    // The remaining log still verifies (the first kept segment anchors the chain)
    // and reads from keep_from.
    assert_eq!(verify(tmp.path()).unwrap().problem, None);
    let mut r = log.reader(keep_from);
    assert_eq!(r.next_record().unwrap().unwrap().offset, keep_from);
    // Reading below the retained range is an error, not a silent skip.
    assert!(log.reader(0).next_record().is_err());
}

#[test]
fn readers_of_an_empty_log_or_empty_segment_return_none() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.segment_bytes = 4 * 1024;
    let log = EventLog::open(cfg.clone()).unwrap();
    // Empty log: one segment holding only its header.
    assert!(
        LogReader::open(tmp.path(), 0)
            .next_record()
            .unwrap()
            .is_none()
    );
    assert!(log.reader(0).next_record().unwrap().is_none());
    // Fill exactly up to a rotation, so the newest segment is empty after reopening.
    for e in events(40) {
        log.append(&e).unwrap();
    }
    let next = log.next_offset();
    drop(log);
    let mut r = LogReader::open(tmp.path(), next);
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(LogReader::open(tmp.path(), 0).count(), 40);
}
