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

/// Writes the log as Parquet files.
pub struct ParquetSink {
    options: ParquetOptions,
    partitions: BTreeMap<(String, &'static str), Vec<Event>>,
    buffered: usize,
    first: Option<Offset>,
    next: Option<Offset>,
    since: Option<Instant>,
    unreported: Option<Offset>,
}

/// The partition directory of an event, relative to the audit root.
pub fn partition_of(event: &Event) -> (String, &'static str) {
    let day = event.time.format("%Y-%m-%d").to_string();
    let proto = event.protocol.map(|p| p.as_str()).unwrap_or("control");
    (day, proto)
}

impl ParquetSink {
    /// Creates the sink, removing temporary files a crash left behind.
    pub fn new(options: ParquetOptions) -> Result<Self, ShipError> {
        fs::create_dir_all(&options.dir).map_err(|e| ShipError::io(&options.dir, e))?;
        remove_temporaries(&options.dir)?;
        Ok(Self {
            options,
            partitions: BTreeMap::new(),
            buffered: 0,
            first: None,
            next: None,
            since: None,
            unreported: None,
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

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_created_by(format!("gatehouse {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Writes one partition file durably; returns its path.
pub fn write_file(dir: &Path, name: &str, events: &[Event]) -> Result<PathBuf, ShipError> {
    fs::create_dir_all(dir).map_err(|e| ShipError::io(dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let batch = arrow::to_record_batch(events).map_err(|e| ShipError::Parquet(e.to_string()))?;
    let file = fs::File::create(&tmp).map_err(|e| ShipError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties()))
        .map_err(|e| ShipError::Parquet(e.to_string()))?;
    writer
        .write(&batch)
        .map_err(|e| ShipError::Parquet(e.to_string()))?;
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
    fn name(&self) -> &str {
        "parquet"
    }

    async fn write(&mut self, records: Vec<(Offset, Event)>) -> Result<(), ShipError> {
        for (offset, event) in records {
            if self.first.is_none() {
                self.first = Some(offset);
                self.since = Some(Instant::now());
            }
            self.next = Some(offset + 1);
            self.partitions
                .entry(partition_of(&event))
                .or_default()
                .push(event);
            self.buffered += 1;
        }
        Ok(())
    }

    async fn flush(&mut self, force: bool) -> Result<Option<Offset>, ShipError> {
        if self.buffered == 0 {
            return Ok(self.unreported.take());
        }
        let due = force
            || self.buffered >= self.options.max_rows
            || self
                .since
                .is_some_and(|t| t.elapsed() >= self.options.max_age);
        if !due {
            return Ok(None);
        }
        let (Some(first), Some(next)) = (self.first, self.next) else {
            return Ok(None);
        };
        let partitions = std::mem::take(&mut self.partitions);
        let root = self.options.dir.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<usize, ShipError> {
            let name = format!("part-{first:020}-{:020}.parquet", next - 1);
            let mut files = 0;
            for ((day, proto), events) in &partitions {
                let dir = root
                    .join(format!("day={day}"))
                    .join(format!("proto={proto}"));
                write_file(&dir, &name, events)?;
                files += 1;
            }
            Ok(files)
        })
        .await
        .map_err(|e| ShipError::Parquet(format!("writer task failed: {e}")))??;
        tracing::debug!(
            message = "Parquet files written.",
            files = written,
            events = self.buffered,
            first,
            next
        );
        self.buffered = 0;
        self.first = None;
        self.since = None;
        self.next = None;
        self.unreported = None;
        Ok(Some(next))
    }

    fn reset(&mut self) {
        self.partitions.clear();
        self.buffered = 0;
        self.first = None;
        self.next = None;
        self.since = None;
        self.unreported = None;
    }
}
