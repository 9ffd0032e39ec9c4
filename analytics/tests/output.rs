//! Writing results: a reader that goes away is told apart from a failed query.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{self, Write};
use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use gatehouse_analytics::{AuditError, OutputFormat, write_batches};

/// Accepts `room` bytes, then fails like a pipe whose reader exited.
struct ClosedPipe {
    room: usize,
}

impl Write for ClosedPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_format_reports_the_io_error_of_a_closed_pipe() {
    let values: Vec<String> = (0..10_000).map(|i| format!("row-{i}")).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(values))],
    )
    .unwrap();
    for format in [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json] {
        let mut pipe = ClosedPipe { room: 100 };
        match write_batches(&mut pipe, std::slice::from_ref(&batch), format) {
            Err(AuditError::Output(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{format:?}");
            }
            other => panic!("{format:?}: expected an output error, got {other:?}"),
        }
        // With room for everything, the same call succeeds.
        let mut sink = ClosedPipe { room: usize::MAX };
        write_batches(&mut sink, std::slice::from_ref(&batch), format).unwrap();
    }
}

#[test]
fn csv_writes_list_columns_as_text() {
    use datafusion::arrow::array::{Array, ListBuilder, StringBuilder};
    let mut lists = ListBuilder::new(StringBuilder::new());
    lists.values().append_value("infra.hosts");
    lists.values().append_value("app.orders");
    lists.append(true);
    lists.append(false);
    lists.append(true);
    let lists = lists.finish();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Utf8, false),
            Field::new("tables_read", lists.data_type().clone(), true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(lists),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    write_batches(&mut out, &[batch], OutputFormat::Csv).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "n,tables_read\na,\"[infra.hosts, app.orders]\"\nb,\nc,[]\n"
    );
}
