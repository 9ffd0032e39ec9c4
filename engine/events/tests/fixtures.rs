//! Frozen schema fixtures: every released encoding must still decode.
//!
//! `tests/fixtures/v1/` was written once by schema version 1 and is never rewritten.
//! To create fixtures for a new version, set `GATEHOUSE_WRITE_FIXTURES=1` with the
//! new version's directory absent. The OCSF golden file is a rendering, not a
//! storage format: `GATEHOUSE_BLESS=1` rewrites it after a deliberate change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::fs;
use std::path::PathBuf;

use gatehouse_events::arrow::{from_record_batch, to_record_batch};
use gatehouse_events::ocsf::{class_uid, to_ocsf};
use gatehouse_events::{Event, synth};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn write_missing_fixtures() {
    let d = dir();
    if d.join("events.jsonl").exists() || std::env::var_os("GATEHOUSE_WRITE_FIXTURES").is_none() {
        return;
    }
    let events = synth::one_of_each();
    let mut jsonl = String::new();
    for e in &events {
        jsonl.push_str(&serde_json::to_string(e).unwrap());
        jsonl.push('\n');
    }
    fs::write(d.join("events.jsonl"), jsonl).unwrap();
    let batch = to_record_batch(&events).unwrap();
    let file = fs::File::create(d.join("events.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn frozen_events() -> Vec<Event> {
    write_missing_fixtures();
    let text = fs::read_to_string(dir().join("events.jsonl"))
        .expect("v1 fixtures missing: run with GATEHOUSE_WRITE_FIXTURES=1 once");
    text.lines()
        .map(|l| Event::from_json(l.as_bytes()).expect("v1 JSON fixture no longer decodes"))
        .collect()
}

#[test]
fn v1_json_fixtures_decode_to_the_sample_events() {
    let events = frozen_events();
    assert_eq!(events.len(), 16);
    assert_eq!(
        events,
        synth::one_of_each(),
        "v1 fixtures decode differently than they were written"
    );
    let types: std::collections::BTreeSet<_> = events.iter().map(Event::event_type).collect();
    assert_eq!(types.len(), 14, "every payload type is covered: {types:?}");
}

#[test]
fn v1_parquet_fixture_decodes() {
    let json = frozen_events();
    let file = fs::File::open(dir().join("events.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut events = Vec::new();
    for batch in reader {
        events.extend(from_record_batch(&batch.unwrap()).unwrap());
    }
    assert_eq!(events, json);
}

#[test]
fn unknown_fields_from_a_newer_writer_are_ignored() {
    for e in frozen_events() {
        let mut v: serde_json::Value = serde_json::to_value(&e).unwrap();
        v["future_envelope_field"] = serde_json::json!("x");
        v["payload"]["future_payload_field"] = serde_json::json!({"nested": [1, 2]});
        if let Some(detail) = v["payload"].get_mut("detail") {
            detail["future_detail_field"] = serde_json::json!(true);
        }
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}

#[test]
fn missing_optional_fields_take_defaults() {
    // A v1 writer never emitted fields added later; simulate by dropping optional ones.
    let line = r#"{"id":"01900000-0000-7000-8000-000000000099","time":"2026-11-01T09:30:00Z","schema_version":1,"gateway_id":"gw","payload":{"type":"request_observed","command":"select 1","detail":{"protocol":"postgres","kind":"select"}}}"#;
    let e = Event::from_json(line.as_bytes()).unwrap();
    let pg = e.postgres().unwrap();
    assert_eq!(pg.kind, gatehouse_events::payload::PgKind::Select);
    assert!(pg.tables_read.is_empty());
    assert_eq!(pg.has_where, None);
}

#[test]
fn ocsf_rendering_matches_golden() {
    let events = frozen_events();
    let mut out = String::new();
    for e in &events {
        // The bytes Kafka consumers receive.
        let mut buf = Vec::new();
        gatehouse_events::ocsf::write_ocsf(e, &mut buf).unwrap();
        out.push_str(std::str::from_utf8(&buf).unwrap());
        out.push('\n');
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&buf).unwrap(),
            to_ocsf(e)
        );
    }
    let path = dir().join("events.ocsf.jsonl");
    if std::env::var_os("GATEHOUSE_BLESS").is_some() || !path.exists() {
        fs::write(&path, &out).unwrap();
    }
    let golden = fs::read_to_string(&path).unwrap();
    for (i, (got, want)) in out.lines().zip(golden.lines()).enumerate() {
        assert_eq!(
            got, want,
            "OCSF rendering of event {i} changed (GATEHOUSE_BLESS=1 to accept)"
        );
    }
    assert_eq!(out.lines().count(), golden.lines().count());
}

#[test]
fn ocsf_classes_follow_the_mapping() {
    let classes: Vec<u32> = frozen_events().iter().map(class_uid).collect();
    assert_eq!(
        classes,
        vec![
            6005, 6005, 6005, 6005, 1007, 4007, 6003, 3003, 2004, 3003, 3003, 3003, 3005, 3005,
            3002, 3002
        ]
    );
    for e in frozen_events() {
        let v = to_ocsf(&e);
        let class = v["class_uid"].as_u64().unwrap();
        let activity = v["activity_id"].as_u64().unwrap();
        assert_eq!(v["type_uid"].as_u64().unwrap(), class * 100 + activity);
        assert_eq!(v["metadata"]["uid"], e.id.to_string());
        assert!(v["metadata"]["version"].as_str().unwrap().starts_with("1."));
        assert!(v["time"].as_i64().unwrap() > 0);
        assert!(v["unmapped"]["gatehouse"]["type"].is_string());
    }
}

#[test]
fn detection_finding_carries_related_events_and_attacks() {
    let alert = frozen_events()
        .into_iter()
        .find(|e| e.event_type() == "alert_raised")
        .unwrap();
    let v = to_ocsf(&alert);
    assert_eq!(v["class_uid"], 2004);
    assert_eq!(v["severity_id"], 5);
    assert_eq!(
        v["finding_info"]["related_events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        v["finding_info"]["attacks"][1]["technique"]["uid"],
        "T1021.004"
    );
}

#[test]
fn arrow_round_trip_of_generated_events() {
    let events: Vec<Event> = (0..1000).map(|i| synth::sample(i, "gw")).collect();
    let batch = to_record_batch(&events).unwrap();
    assert_eq!(batch.num_rows(), 1000);
    assert_eq!(from_record_batch(&batch).unwrap(), events);
}

#[test]
fn audit_docs_list_the_current_columns() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.md");
    let doc = fs::read_to_string(&path).unwrap();
    let (begin, end) = ("<!-- columns:begin -->\n", "<!-- columns:end -->");
    let start = doc.find(begin).expect("columns:begin marker") + begin.len();
    let stop = doc.find(end).expect("columns:end marker");
    let table = gatehouse_events::arrow::markdown_columns();
    if std::env::var_os("GATEHOUSE_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], table, &doc[stop..]);
        fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..stop],
        table,
        "docs/audit.md column list is stale (GATEHOUSE_BLESS=1 to regenerate)"
    );
}

#[test]
fn tags_anywhere_in_the_object_still_decode() {
    // Our encoder writes the tag first (fast path); JSON from elsewhere may not.
    for e in frozen_events() {
        let mut v: serde_json::Value = serde_json::to_value(&e).unwrap();
        let payload = v["payload"].as_object_mut().unwrap();
        let tag = payload.remove("type").unwrap();
        if let Some(serde_json::Value::Object(detail)) = payload.get_mut("detail") {
            let p = detail.remove("protocol").unwrap();
            detail.insert("protocol".into(), p); // now last
        }
        payload.insert("type".into(), tag); // now last
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(Event::from_json(text.as_bytes()).unwrap(), e);
    }
    let err = Event::from_json(br#"{"id":"01900000-0000-7000-8000-000000000001","time":"2026-11-01T09:30:00Z","schema_version":1,"gateway_id":"g","payload":{"type":"no_such_event"}}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `no_such_event`"),
        "{err}"
    );
}

#[test]
fn payloads_added_after_v1_round_trip_through_every_encoding() {
    let later = synth::later_additions();
    for e in &later {
        let json = serde_json::to_vec(e).unwrap();
        assert_eq!(&Event::from_json(&json).unwrap(), e);
        let mut hand = Vec::new();
        gatehouse_events::json::write_event(&mut hand, e).unwrap();
        assert_eq!(&Event::from_json(&hand).unwrap(), e);
        let v = to_ocsf(e);
        let class = v["class_uid"].as_u64().unwrap();
        assert_eq!(
            v["type_uid"].as_u64().unwrap(),
            class * 100 + v["activity_id"].as_u64().unwrap()
        );
        assert_eq!(v["unmapped"]["gatehouse"]["type"], e.event_type());
    }
    let batch = to_record_batch(&later).unwrap();
    assert_eq!(from_record_batch(&batch).unwrap(), later);
    let classes: Vec<u32> = later.iter().map(class_uid).collect();
    assert_eq!(classes, vec![3003, 3003, 6002, 6002]);
}

#[test]
fn every_payload_type_is_named_and_sampled() {
    let names = gatehouse_events::Payload::TYPE_NAMES;
    let sampled: std::collections::BTreeSet<&str> = synth::one_of_each()
        .iter()
        .chain(synth::later_additions().iter())
        .map(|e| e.payload.type_name())
        .collect();
    let listed: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(listed.len(), names.len(), "a type name is listed twice");
    assert_eq!(
        sampled, listed,
        "Payload::TYPE_NAMES and the sample events disagree"
    );
}

/// A guarded host's `process` and `connect` requests (ADR 0023) keep every field
/// through Parquet and render as OCSF Process and Network Activity.
#[test]
fn guarded_host_requests_survive_parquet_and_render_in_ocsf() {
    use gatehouse_events::payload::{
        Payload, RequestDetail, RequestObserved, SshProcess, SshRequest, SshRequestKind,
    };
    use gatehouse_events::{Identity, Protocol};
    let event = |command: &str, kind, process: SshProcess| {
        Event::builder(
            "gw",
            Payload::from(RequestObserved {
                reason: None,
                command: command.into(),
                detail: RequestDetail::Ssh(SshRequest {
                    kind,
                    host: "web-1".into(),
                    argv: vec!["/tmp/dl".into(), "-s".into(), "http://x/i".into()],
                    program: Some("curl".into()),
                    programs: vec!["curl".into()],
                    process: Some(process),
                    ..SshRequest::default()
                }),
            }),
        )
        .session("s-1")
        .identity(Identity::named("agent:etl"))
        .target("web")
        .protocol(Protocol::Ssh)
        .build()
    };
    let events = vec![
        event(
            "/tmp/dl -s http://x/i",
            SshRequestKind::Process,
            SshProcess {
                pid: 4242,
                exe: "/usr/bin/curl".into(),
                cwd: "/tmp".into(),
                parents: vec!["/usr/bin/bash".into(), "/usr/sbin/sshd".into()],
                interpreter: None,
                anonymous: false,
                killed: None,
                ..SshProcess::default()
            },
        ),
        event(
            "connect 169.254.169.254 port 80 (python3.11)",
            SshRequestKind::Connect,
            SshProcess {
                pid: 4243,
                exe: "/usr/bin/python3.11".into(),
                address: Some("169.254.169.254".into()),
                port: Some(80),
                ..SshProcess::default()
            },
        ),
        event(
            "killed at exec: /usr/bin/touch",
            SshRequestKind::Process,
            SshProcess {
                pid: 4244,
                exe: "/usr/bin/true".into(),
                killed: Some("/usr/bin/touch".into()),
                anonymous: true,
                interpreter: Some("/usr/bin/dash".into()),
                ..SshProcess::default()
            },
        ),
        event(
            "spawn: bash makes task 49",
            SshRequestKind::Spawn,
            SshProcess {
                pid: 4245,
                exe: "/usr/bin/bash".into(),
                tasks: Some(49),
                ..SshProcess::default()
            },
        ),
    ];
    let batch = to_record_batch(&events).unwrap();
    assert_eq!(from_record_batch(&batch).unwrap(), events);
    let text = |name: &str, row: usize| {
        let col = batch.column_by_name(name).unwrap();
        let a = col
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        (!arrow_array::Array::is_null(a, row)).then(|| a.value(row).to_owned())
    };
    assert_eq!(text("ssh_process_exe", 0).as_deref(), Some("/usr/bin/curl"));
    assert_eq!(text("ssh_process_cwd", 0).as_deref(), Some("/tmp"));
    assert_eq!(
        text("ssh_connect_address", 1).as_deref(),
        Some("169.254.169.254")
    );
    assert_eq!(
        text("ssh_process_killed", 2).as_deref(),
        Some("/usr/bin/touch")
    );
    assert_eq!(text("ssh_connect_address", 0), None);
    assert_eq!(class_uid(&events[0]), 1007, "Process Activity");
    assert_eq!(class_uid(&events[1]), 4001, "Network Activity");
    let o = to_ocsf(&events[1]);
    assert_eq!(o["dst_endpoint"]["ip"], "169.254.169.254");
    assert_eq!(o["dst_endpoint"]["port"], 80);
    assert_eq!(to_ocsf(&events[2])["activity_id"], 2, "Terminate");
    let tasks = batch
        .column_by_name("ssh_process_tasks")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::UInt32Array>()
        .unwrap()
        .clone();
    assert_eq!(arrow_array::Array::null_count(&tasks), 3);
    assert_eq!(tasks.value(3), 49);
    assert_eq!(class_uid(&events[3]), 1007, "Process Activity");
    assert_eq!(to_ocsf(&events[3])["activity_id"], 1, "Launch");
}
