//! Shipping survives a broker outage and a shipper crash: every event id reaches
//! Kafka (counted with a real consumer) and Parquet (counted with DataFusion).

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    Proc, Tansu, cursor, gatehouse, kafka_event_ids, parquet_event_ids, wait_until,
};

const N: u64 = 100_000;

fn log_ids(data: &std::path::Path) -> HashSet<String> {
    gatehouse_core::log::LogReader::open(data.join("log"), 0)
        .map(|r| r.unwrap().event().unwrap().id.to_string())
        .collect()
}

fn shipper(data: &std::path::Path, brokers: &str) -> Proc {
    Proc::spawn(
        "gatehouse ship",
        gatehouse(data)
            .args([
                "ship",
                "--parquet",
                "--kafka",
                brokers,
                "--delivery-timeout-s",
                "5",
            ])
            .args(["--parquet-max-rows", "20000", "--parquet-max-age-s", "2"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.join("ship.log")).unwrap()),
    )
}

fn assert_all_shipped(data: &std::path::Path, brokers: &str) {
    wait_until(
        "both cursors at the end of the log",
        Duration::from_secs(300),
        || cursor(data, "kafka") >= N && cursor(data, "parquet") >= N,
    );
    let expected = log_ids(data);
    assert_eq!(expected.len() as u64, N);
    let (kafka, records) = kafka_event_ids(
        brokers,
        "gatehouse.events",
        N as usize,
        Duration::from_secs(120),
    );
    let missing_kafka = expected.difference(&kafka).count();
    assert_eq!(
        missing_kafka, 0,
        "{missing_kafka} event ids never reached Kafka ({records} records read)"
    );
    let parquet = parquet_event_ids(&data.join("audit"));
    let missing_parquet = expected.difference(&parquet).count();
    assert_eq!(
        missing_parquet, 0,
        "{missing_parquet} event ids never reached Parquet"
    );
    eprintln!(
        "kafka: {} distinct ids in {records} records; parquet: {} distinct ids",
        kafka.len(),
        parquet.len()
    );
}

#[test]
fn broker_stopped_for_30s_mid_stream_loses_nothing() {
    let tansu = Tansu::start();
    let data = tempfile::tempdir().unwrap();
    let mut generator = Proc::spawn(
        "gatehouse log generate",
        gatehouse(data.path())
            .args([
                "log",
                "generate",
                "--count",
                &N.to_string(),
                "--pace-us",
                "300",
            ])
            .stdout(Stdio::null()),
    );
    let _ship = shipper(data.path(), &tansu.brokers());
    wait_until(
        "some events shipped to kafka",
        Duration::from_secs(60),
        || cursor(data.path(), "kafka") > 1000,
    );
    tansu.proc.signal("STOP");
    let stopped_at = cursor(data.path(), "kafka");
    std::thread::sleep(Duration::from_secs(30));
    let during = cursor(data.path(), "kafka");
    tansu.proc.signal("CONT");
    assert!(
        during <= stopped_at + 20_000,
        "the kafka cursor ran ahead while the broker was stopped"
    );
    generator.wait_success(Duration::from_secs(300));
    assert_all_shipped(data.path(), &tansu.brokers());
}

#[test]
fn shipper_killed_and_restarted_mid_shipping_loses_nothing() {
    let tansu = Tansu::start();
    let data = tempfile::tempdir().unwrap();
    let ok = gatehouse(data.path())
        .args(["log", "generate", "--count", &N.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut ship = shipper(data.path(), &tansu.brokers());
    wait_until(
        "the shipper to make progress",
        Duration::from_secs(120),
        || cursor(data.path(), "kafka") > 10_000 || cursor(data.path(), "parquet") > 10_000,
    );
    ship.kill9();
    let k1 = cursor(data.path(), "kafka");
    let p1 = cursor(data.path(), "parquet");
    assert!(
        k1 < N || p1 < N,
        "shipping finished before the kill; nothing was tested"
    );
    // Restart; the cursor resumes (duplicates allowed, losses not).
    let _ship = shipper(data.path(), &tansu.brokers());
    assert_all_shipped(data.path(), &tansu.brokers());
}
