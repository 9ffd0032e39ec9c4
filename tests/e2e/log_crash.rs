//! `kill -9` of a process appending events in `batch` mode: every acknowledged event
//! survives, the chain verifies, no partial record survives.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use gatehouse_core::log::{EventLog, LogConfig, LogReader, verify};

use crate::support::{Proc, gatehouse, stdout_lines};

#[test]
fn kill_dash_nine_during_batch_appends_loses_no_acknowledged_event() {
    for round in 0..5u64 {
        let data = tempfile::tempdir().unwrap();
        let mut proc = Proc::spawn(
            "gatehouse log generate",
            gatehouse(data.path())
                .args([
                    "log",
                    "generate",
                    "--count",
                    "100000",
                    "--durability",
                    "batch",
                    "--print-acks",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let lines = stdout_lines(&mut proc.child);
        // Kill at a different point each round.
        let kill_after = 5_000 + round * 17_000;
        let mut acked: HashMap<u64, String> = HashMap::new();
        while (acked.len() as u64) < kill_after {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("generator stalled");
            let (off, id) = line.split_once(' ').unwrap();
            acked.insert(off.parse().unwrap(), id.to_owned());
        }
        proc.kill9();
        // Lines already in the pipe were printed after their append returned.
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            let (off, id) = line.split_once(' ').unwrap();
            acked.insert(off.parse().unwrap(), id.to_owned());
        }
        assert!(
            acked.len() < 100_000,
            "round {round}: the kill came too late to test anything"
        );

        // Restart: opening the log runs recovery.
        let dir = data.path().join("log");
        let log = EventLog::open(LogConfig::new(&dir)).unwrap();
        let next = log.next_offset();
        drop(log);
        let report = verify(&dir).unwrap();
        assert_eq!(
            report.problem, None,
            "round {round}: chain does not verify after recovery"
        );
        assert_eq!(report.next_offset, next);

        let mut found = 0;
        for rec in LogReader::open(&dir, 0) {
            let rec = rec.unwrap();
            if let Some(id) = acked.get(&rec.offset) {
                assert_eq!(
                    &rec.event().unwrap().id.to_string(),
                    id,
                    "round {round}: offset {} holds another event",
                    rec.offset
                );
                found += 1;
            }
        }
        assert_eq!(
            found,
            acked.len(),
            "round {round}: acknowledged events missing after kill -9"
        );
        eprintln!(
            "round {round}: killed after {} acks, log holds {next} records, all acknowledged present",
            acked.len()
        );
    }
}

#[test]
fn log_verify_cli_names_the_offset_of_a_flipped_byte() {
    let data = tempfile::tempdir().unwrap();
    let ok = gatehouse(data.path())
        .args(["log", "generate", "--count", "1000"])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = gatehouse(data.path())
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Flip one byte inside record 500's payload.
    let dir = data.path().join("log");
    let seg = gatehouse_core::log::list_segments(&dir)
        .unwrap()
        .remove(0)
        .path;
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut pos = 52usize;
    for _ in 0..500 {
        let rec = gatehouse_core::log::record::decode_record(&bytes[pos..]).unwrap();
        pos += rec.encoded_len();
    }
    bytes[pos + 48 + 10] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let out = gatehouse(data.path())
        .args(["log", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("bad record at offset 500"), "{stdout}");
}
