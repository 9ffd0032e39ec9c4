#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use super::*;
use gatehouse_dsl::mask::MaskItem;

fn spec() -> Arc<MaskSpec> {
    Arc::new(MaskSpec {
        items: vec![
            MaskItem {
                target: MaskTarget::ColumnsMatching(regex::Regex::new("(?i)password").unwrap()),
                replacement: Replacement::With("****".into()),
            },
            MaskItem {
                target: MaskTarget::ValuesMatching(regex::Regex::new(r"\b\d{16}\b").unwrap()),
                replacement: Replacement::KeepLast(4),
            },
        ],
    })
}

fn col(name: &str, oid: u32, format: i16) -> Column {
    Column {
        name: name.into(),
        table_oid: 16384,
        type_oid: oid,
        format,
    }
}

fn row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for v in values {
        put_value(&mut b, *v);
    }
    b.to_vec()
}

fn values(msg: &[u8]) -> Vec<Option<Vec<u8>>> {
    data_row(&msg[5..])
        .unwrap()
        .map(|v| v.unwrap().map(<[u8]>::to_vec))
        .collect()
}

#[test]
fn masks_by_column_and_pattern_in_text() {
    let plan = Plan::new(
        &[col("Password", 25, 0), col("note", 25, 0), col("id", 23, 0)],
        &[],
        &[spec()],
        &[],
        &[],
    );
    assert!(plan.active());
    let mut out = BytesMut::new();
    let n = plan
        .apply(
            &row(&[Some(b"hunter2"), Some(b"card 4111111111111111"), None]),
            &mut out,
            &mut [],
        )
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        values(&out),
        vec![
            Some(b"****".to_vec()),
            Some(b"card ************1111".to_vec()),
            None
        ]
    );
}

#[test]
fn labels_derived_from_masked_columns_are_masked() {
    use crate::classify::lineage::Source;
    let derived = vec![
        Source {
            columns: vec!["password".into()],
            opaque: false,
            direct: true,
        },
        Source {
            columns: vec!["password".into()],
            opaque: false,
            direct: false,
        },
        Source {
            columns: vec!["id".into()],
            opaque: false,
            direct: true,
        },
    ];
    let computed = Column {
        table_oid: 0,
        ..col("upper", 25, 0)
    };
    let plan = Plan::new(
        &[col("p", 25, 0), computed, col("id", 23, 0)],
        &[],
        &[spec()],
        &[],
        &derived,
    );
    let mut out = BytesMut::new();
    plan.apply(
        &row(&[Some(b"hunter2"), Some(b"HUNTER2"), Some(b"1")]),
        &mut out,
        &mut [],
    )
    .unwrap();
    assert_eq!(
        values(&out),
        vec![
            Some(b"****".to_vec()),
            Some(b"****".to_vec()),
            Some(b"1".to_vec())
        ]
    );
}

#[test]
fn binary_values_fail_closed_only_when_they_would_change() {
    let plan = Plan::new(
        &[col("id", 20, 0), col("password", 17, 0)],
        &[1, 0],
        &[spec()],
        &[],
        &[],
    );
    let mut out = BytesMut::new();
    plan.apply(&row(&[Some(&42i64.to_be_bytes()), None]), &mut out, &mut [])
        .unwrap();
    assert_eq!(values(&out)[0], Some(42i64.to_be_bytes().to_vec()));
    let e = plan
        .apply(
            &row(&[Some(&4_111_111_111_111_111i64.to_be_bytes()), None]),
            &mut BytesMut::new(),
            &mut [],
        )
        .unwrap_err();
    assert!(matches!(e, MaskError::Binary { .. }), "{e}");
    let plan = Plan::new(&[col("password", 17, 0)], &[1], &[spec()], &[], &[]);
    assert!(
        plan.apply(&row(&[Some(b"x")]), &mut BytesMut::new(), &mut [])
            .is_err()
    );
}

#[test]
fn captures_are_deduplicated_and_bounded() {
    let req = CaptureRequest {
        name: "seq.recon.hosts".into(),
        source: "pg.result.column".into(),
        arg: "hostname".into(),
        limit: 2,
        max_bytes: 100,
    };
    let mut caps = vec![Captured::new(req)];
    let plan = Plan::new(&[col("HostName", 25, 0)], &[], &[], &caps, &[]);
    for h in ["a", "a", "b", "c"] {
        let mut out = BytesMut::new();
        plan.apply(&row(&[Some(h.as_bytes())]), &mut out, &mut caps)
            .unwrap();
        assert_eq!(values(&out), vec![Some(h.as_bytes().to_vec())]);
    }
    let c = caps.remove(0).into_capture();
    assert_eq!(
        (c.values, c.truncated),
        (vec!["a".to_owned(), "b".to_owned()], true)
    );
}
