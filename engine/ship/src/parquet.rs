//! Parquet files, hive-partitioned by day and protocol:
//! `<dir>/day=YYYY-MM-DD/proto=<postgres|ssh|kubernetes|control>/part-<first>-<last>.parquet`.
//!
//! Files are written under a temporary name, fsynced and renamed, so a reader (or
//! `datafusion-cli`) never sees a partial file. The cursor moves only after the
//! rename. File names carry the log offset range they hold.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use chrono::NaiveDate;
use gatehouse_core::log::Offset;
use gatehouse_events::{Event, arrow};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{ShipError, Sink};

/// Parquet sink settings.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Root directory of the audit files.
    pub dir: PathBuf,
    /// Roll (write files) once this many events are buffered.
    pub max_rows: usize,
    /// Roll at least this often while events are buffered.
    pub max_age: Duration,
}

impl ParquetOptions {
    /// Defaults (roll at 200,000 events or 30 s) for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_rows: 200_000,
            max_age: Duration::from_secs(30),
        }
    }
}

/// A batch of log records encoded for Parquet: one Arrow batch per partition.
pub struct ParquetBatch {
    first: Offset,
    next: Offset,
    rows: usize,
    parts: Vec<((NaiveDate, &'static str), RecordBatch)>,
}

/// Splits records by partition and transposes each part into an Arrow batch (on a
/// shipper worker thread).
fn encode(records: Vec<(Offset, Event)>) -> Result<ParquetBatch, ShipError> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err(ShipError::Parquet("empty batch".into()));
    };
    let (first, next, rows) = (first.0, last.0 + 1, records.len());
    let mut split: BTreeMap<(NaiveDate, &'static str), Vec<Event>> = BTreeMap::new();
    for (_, event) in records {
        split.entry(partition_of(&event)).or_default().push(event);
    }
    let parts = split
        .into_iter()
        .map(|(key, events)| {
            arrow::to_record_batch(&events)
                .map(|batch| (key, batch))
                .map_err(|e| ShipError::Parquet(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok(ParquetBatch {
        first,
        next,
        rows,
        parts,
    })
}

/// Writes the log as Parquet files.
pub struct ParquetSink {
    options: ParquetOptions,
    partitions: BTreeMap<(NaiveDate, &'static str), Vec<RecordBatch>>,
    in_flight: Option<tokio::task::JoinHandle<Result<Offset, ShipError>>>,
    buffered: usize,
    first: Option<Offset>,
    next: Option<Offset>,
    since: Option<Instant>,
}

/// The partition of an event: its UTC day and protocol (`control` for none).
pub fn partition_of(event: &Event) -> (NaiveDate, &'static str) {
    (
        event.time.date_naive(),
        event.protocol.map(|p| p.as_str()).unwrap_or("control"),
    )
}

/// The partition directory, relative to the audit root.
pub fn partition_dir(day: NaiveDate, proto: &str) -> PathBuf {
    PathBuf::from(format!("day={}", day.format("%Y-%m-%d"))).join(format!("proto={proto}"))
}

impl ParquetSink {
    /// Creates the sink, removing temporary files a crash left behind.
    pub fn new(options: ParquetOptions) -> Result<Self, ShipError> {
        fs::create_dir_all(&options.dir).map_err(|e| ShipError::io(&options.dir, e))?;
        remove_temporaries(&options.dir)?;
        Ok(Self {
            options,
            partitions: BTreeMap::new(),
            in_flight: None,
            buffered: 0,
            first: None,
            next: None,
            since: None,
        })
    }
}

fn remove_temporaries(dir: &Path) -> Result<(), ShipError> {
    for entry in fs::read_dir(dir).map_err(|e| ShipError::io(dir, e))? {
        let entry = entry.map_err(|e| ShipError::io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            remove_temporaries(&path)?;
        } else if path.extension().is_some_and(|x| x == "tmp") {
            fs::remove_file(&path).map_err(|e| ShipError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Columns whose values are (nearly) unique per row: dictionary encoding only costs
/// time there, and min/max statistics on them never prune anything.
const HIGH_CARDINALITY: &[&str] = &[
    "event_id",
    "payload_json",
    "command",
    "request_event_id",
    "related_events",
];

fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_created_by(format!("gatehouse {}", env!("CARGO_PKG_VERSION")));
    for name in HIGH_CARDINALITY {
        let col = parquet::schema::types::ColumnPath::from(*name);
        b = b
            .set_column_dictionary_enabled(col.clone(), false)
            .set_column_statistics_enabled(col, parquet::file::properties::EnabledStatistics::None);
    }
    b.build()
}

/// Events per Arrow batch handed to the Parquet writer.
const ARROW_CHUNK: usize = 4096;

/// Writes one partition file durably; returns its path.
pub fn write_file(dir: &Path, name: &str, events: &[Event]) -> Result<PathBuf, ShipError> {
    // Rows are transposed into columns a few thousand at a time, so the events and
    // the column buffers stay in cache (one batch of 100,000 events took 2x as long).
    let batches = events
        .chunks(ARROW_CHUNK)
        .map(arrow::to_record_batch)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ShipError::Parquet(e.to_string()))?;
    write_batches(dir, name, &batches)
}

/// Writes Arrow batches (audit schema) as one partition file, durably; returns its
/// path.
pub fn write_batches(
    dir: &Path,
    name: &str,
    batches: &[RecordBatch],
) -> Result<PathBuf, ShipError> {
    fs::create_dir_all(dir).map_err(|e| ShipError::io(dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs::File::create(&tmp).map_err(|e| ShipError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, arrow::schema(), Some(properties()))
        .map_err(|e| ShipError::Parquet(e.to_string()))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| ShipError::Parquet(e.to_string()))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| ShipError::Parquet(e.to_string()))?;
    file.sync_all().map_err(|e| ShipError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| ShipError::io(&path, e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ShipError::io(dir, e))?;
    Ok(path)
}

impl Sink for ParquetSink {
    type Batch = ParquetBatch;

    fn name(&self) -> &str {
        "parquet"
    }

    fn encoder(&self) -> crate::Encoder<ParquetBatch> {
        encode
    }

    async fn write(&mut self, batch: ParquetBatch) -> Result<(), ShipError> {
        if self.first.is_none() {
            self.first = Some(batch.first);
            self.since = Some(Instant::now());
        }
        self.next = Some(batch.next);
        for (key, part) in batch.parts {
            self.partitions.entry(key).or_default().push(part);
        }
        self.buffered += batch.rows;
        Ok(())
    }

    async fn flush(&mut self, force: bool) -> Result<Option<Offset>, ShipError> {
        // Files are encoded on a blocking thread while the shipper decodes the next
        // records; the cursor only moves when a write has finished.
        let mut done = None;
        if let Some(task) = &self.in_flight
            && (task.is_finished() || force)
            && let Some(task) = self.in_flight.take()
        {
            done = Some(
                task.await
                    .map_err(|e| ShipError::Parquet(format!("writer task failed: {e}")))??,
            );
        }
        let due = self.buffered > 0
            && (force
                || self.buffered >= self.options.max_rows
                || self
                    .since
                    .is_some_and(|t| t.elapsed() >= self.options.max_age));
        if !due {
            return Ok(done);
        }
        if let Some(task) = self.in_flight.take() {
            // One write at a time: wait for the previous one before starting the next.
            done = Some(
                task.await
                    .map_err(|e| ShipError::Parquet(format!("writer task failed: {e}")))??,
            );
        }
        let (Some(first), Some(next)) = (self.first, self.next) else {
            return Ok(done);
        };
        let partitions = std::mem::take(&mut self.partitions);
        let root = self.options.dir.clone();
        let events = self.buffered;
        let task = tokio::task::spawn_blocking(move || -> Result<Offset, ShipError> {
            let name = format!("part-{first:020}-{:020}.parquet", next - 1);
            let files = partitions.len();
            for ((day, proto), batches) in &partitions {
                write_batches(&root.join(partition_dir(*day, proto)), &name, batches)?;
            }
            tracing::debug!(
                message = "Parquet files written.",
                files,
                events,
                first,
                next
            );
            Ok(next)
        });
        self.buffered = 0;
        self.first = None;
        self.since = None;
        self.next = None;
        if force {
            done = Some(
                task.await
                    .map_err(|e| ShipError::Parquet(format!("writer task failed: {e}")))??,
            );
        } else {
            self.in_flight = Some(task);
        }
        Ok(done)
    }

    fn reset(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
        self.partitions.clear();
        self.buffered = 0;
        self.first = None;
        self.next = None;
        self.since = None;
    }
}
