//! Parquet files, hive-partitioned by day and protocol:
//! `<dir>/day=YYYY-MM-DD/proto=<postgres|ssh|kubernetes|control>/part-<first>-<last>.parquet`.
//!
//! Files are written under a temporary name, fsynced and renamed, so a reader (or
//! `datafusion-cli`) never sees a partial file. The cursor moves only after the
//! rename. File names carry the log offset range they hold.
//!
//! With a [`RemoteAudit`] (a cluster's shared audit, ADR 0025 §6) the directory is
//! only where files are written; each finished file is put in the object store under
//! the same partition path, its name carrying the gateway's id
//! (`part-<gateway>-<first>-<last>.parquet`, unique across gateways), and the cursor
//! moves only after the store has acknowledged every file of the roll.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use chrono::NaiveDate;
use gatehouse_core::log::Offset;
use gatehouse_events::{Event, arrow};
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{ShipError, Sink};

/// An object store (S3 API) the audit files go to, shared by a cluster's gateways.
#[derive(Debug, Clone)]
pub struct RemoteAudit {
    /// The store (e.g. `object_store::aws::AmazonS3`).
    pub store: Arc<dyn ObjectStore>,
    /// Where in the store the audit's partitions start (`day=.../proto=...` below it).
    pub prefix: object_store::path::Path,
    /// This gateway's id, part of every file name so that gateways never overwrite
    /// one another's files.
    pub gateway_id: String,
}

/// Parquet sink settings.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Root directory of the audit files (with [`ParquetOptions::remote`], only of
    /// the files being written).
    pub dir: PathBuf,
    /// Put finished files in this object store instead of keeping them in `dir`.
    pub remote: Option<RemoteAudit>,
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
            remote: None,
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

type PartKey = (NaiveDate, &'static str);

/// What the sink asks of its writer thread.
enum Command {
    /// Append a batch to the open file of a partition (opening it if needed).
    Write(PartKey, RecordBatch),
    /// Finish every open file (footer, fsync, rename to its final name) and report.
    Roll {
        first: Offset,
        next: Offset,
        done: tokio::sync::oneshot::Sender<Result<Offset, ShipError>>,
    },
}

/// Batches queued for the writer thread before `write` waits.
const WRITER_QUEUE: usize = 8;

/// Writes the log as Parquet files.
///
/// Files are written as batches arrive, by one writer thread that keeps a file open
/// per partition, so encoding overlaps with decoding the next records and only the
/// footer is left when a file rolls; the cursor moves when the roll is durable.
pub struct ParquetSink {
    options: ParquetOptions,
    writer: Option<WriterHandle>,
    /// Writer threads started so far (names their temporary files).
    generation: u64,
    in_flight: Option<tokio::sync::oneshot::Receiver<Result<Offset, ShipError>>>,
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
            writer: None,
            generation: 0,
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
    let mut file = OpenFile::create(dir.to_owned(), &format!("{name}.tmp"))?;
    for batch in batches {
        if let Err(e) = file.write(batch) {
            file.discard();
            return Err(e);
        }
    }
    file.finish(name)
}

/// The sink's end of a writer thread.
struct WriterHandle {
    commands: tokio::sync::mpsc::Sender<Command>,
    /// Set when the sink resets: the thread then drops whatever is still queued
    /// (including a roll) and deletes its files, instead of finishing them.
    abandoned: Arc<AtomicBool>,
}

/// A partition file being written under a temporary name.
struct OpenFile {
    dir: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<fs::File>,
}

impl OpenFile {
    /// Creates `dir/tmp_name` (and `dir`).
    fn create(dir: PathBuf, tmp_name: &str) -> Result<Self, ShipError> {
        fs::create_dir_all(&dir).map_err(|e| ShipError::io(&dir, e))?;
        let tmp = dir.join(tmp_name);
        let file = fs::File::create(&tmp).map_err(|e| ShipError::io(&tmp, e))?;
        let writer = ArrowWriter::try_new(file, arrow::schema(), Some(properties()))
            .map_err(|e| ShipError::Parquet(e.to_string()))?;
        Ok(Self { dir, tmp, writer })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ShipError> {
        self.writer
            .write(batch)
            .map_err(|e| ShipError::Parquet(e.to_string()))
    }

    /// Writes the footer and puts the file in the store at `location`; the
    /// temporary file is removed either way.
    fn upload(
        self,
        remote: &RemoteAudit,
        runtime: &tokio::runtime::Handle,
        location: &object_store::path::Path,
    ) -> Result<(), ShipError> {
        let tmp = self.tmp;
        let result = self
            .writer
            .into_inner()
            .map_err(|e| ShipError::Parquet(e.to_string()))
            .and_then(|_| fs::read(&tmp).map_err(|e| ShipError::io(&tmp, e)))
            .and_then(|bytes| {
                runtime
                    .block_on(remote.store.put(location, bytes.into()))
                    .map_err(|e| ShipError::Store(format!("cannot put `{location}`: {e}")))
            });
        let _ = fs::remove_file(&tmp);
        result.map(drop)
    }

    /// Writes the footer, fsyncs, renames the file to `name` and fsyncs the directory.
    /// On failure the temporary file is removed.
    fn finish(self, name: &str) -> Result<PathBuf, ShipError> {
        let (dir, tmp) = (self.dir, self.tmp);
        let path = dir.join(name);
        let result = self
            .writer
            .into_inner()
            .map_err(|e| ShipError::Parquet(e.to_string()))
            .and_then(|f| f.sync_all().map_err(|e| ShipError::io(&tmp, e)))
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| ShipError::io(&path, e)))
            .and_then(|()| {
                fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| ShipError::io(&dir, e))
            });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }

    /// Abandons the file (its rows were never covered by the cursor).
    fn discard(self) {
        drop(self.writer);
        let _ = fs::remove_file(&self.tmp);
    }
}

/// The writer thread: appends batches to open files, finishes them on `Roll`. After
/// an error it refuses every roll (the sink resets and starts a new thread).
fn writer_loop(
    root: PathBuf,
    tmp_name: String,
    remote: Option<(RemoteAudit, tokio::runtime::Handle)>,
    mut commands: tokio::sync::mpsc::Receiver<Command>,
    abandoned: Arc<AtomicBool>,
) {
    let mut open: BTreeMap<PartKey, OpenFile> = BTreeMap::new();
    let mut failed: Option<String> = None;
    while let Some(command) = commands.blocking_recv() {
        if abandoned.load(Ordering::Acquire) {
            break;
        }
        match command {
            Command::Write(key, batch) => {
                if failed.is_some() {
                    continue;
                }
                if let Err(e) = append(&root, &tmp_name, &mut open, key, &batch) {
                    failed = Some(e.to_string());
                }
            }
            Command::Roll { first, next, done } => {
                let result = match &failed {
                    Some(e) => Err(ShipError::Parquet(format!("an earlier write failed: {e}"))),
                    None => finish(&mut open, remote.as_ref(), first, next).map(|()| next),
                };
                if let Err(e) = &result {
                    failed.get_or_insert_with(|| e.to_string());
                }
                // The sink may have given up waiting (reset); nothing to tell then.
                let _ = done.send(result);
            }
        }
    }
    // Abandoned (the sink was reset or dropped): the cursor never covered these rows,
    // so they will be shipped again.
    for (_, file) in open {
        file.discard();
    }
}

fn append(
    root: &Path,
    tmp_name: &str,
    open: &mut BTreeMap<PartKey, OpenFile>,
    key: PartKey,
    batch: &RecordBatch,
) -> Result<(), ShipError> {
    let file = match open.entry(key) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => v.insert(OpenFile::create(
            root.join(partition_dir(key.0, key.1)),
            tmp_name,
        )?),
    };
    file.write(batch)
}

fn finish(
    open: &mut BTreeMap<PartKey, OpenFile>,
    remote: Option<&(RemoteAudit, tokio::runtime::Handle)>,
    first: Offset,
    next: Offset,
) -> Result<(), ShipError> {
    let last = next.saturating_sub(1);
    let files = open.len();
    // Files left in `open` after a failure are discarded when the thread ends.
    while let Some((key, file)) = open.pop_first() {
        match remote {
            None => {
                file.finish(&format!("part-{first:020}-{last:020}.parquet"))?;
            }
            Some((remote, runtime)) => {
                let dir = partition_dir(key.0, key.1);
                let mut location = remote.prefix.clone();
                for part in dir.iter() {
                    location = location.join(part.to_string_lossy().as_ref());
                }
                let name = format!("part-{}-{first:020}-{last:020}.parquet", remote.gateway_id);
                file.upload(remote, runtime, &location.join(name.as_str()))?;
            }
        }
    }
    tracing::debug!(message = "Parquet files written.", files, first, next);
    Ok(())
}

impl ParquetSink {
    /// The writer thread's queue, starting the thread if there is none.
    fn writer(&mut self) -> tokio::sync::mpsc::Sender<Command> {
        if let Some(w) = &self.writer {
            return w.commands.clone();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(WRITER_QUEUE);
        let root = self.options.dir.clone();
        self.generation += 1;
        let tmp_name = format!(
            "writing-{}-{}.parquet.tmp",
            std::process::id(),
            self.generation
        );
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        let remote = self
            .options
            .remote
            .clone()
            .map(|r| (r, tokio::runtime::Handle::current()));
        // Detached: it ends when the sender is dropped (reset, or the sink dropped).
        drop(tokio::task::spawn_blocking(move || {
            writer_loop(root, tmp_name, remote, rx, flag);
        }));
        self.writer = Some(WriterHandle {
            commands: tx.clone(),
            abandoned,
        });
        tx
    }
}

fn writer_gone() -> ShipError {
    ShipError::Task("the Parquet writer thread stopped".into())
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
        let writer = self.writer();
        for (key, part) in batch.parts {
            writer
                .send(Command::Write(key, part))
                .await
                .map_err(|_| writer_gone())?;
        }
        self.buffered += batch.rows;
        Ok(())
    }

    async fn flush(&mut self, force: bool) -> Result<Option<Offset>, ShipError> {
        // The cursor moves only when a roll (footers, fsync, renames) has finished.
        let mut done = None;
        if let Some(rx) = &mut self.in_flight {
            let finished = if force {
                Some(rx.await.map_err(|_| writer_gone()))
            } else {
                match rx.try_recv() {
                    Ok(result) => Some(Ok(result)),
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        Some(Err(writer_gone()))
                    }
                }
            };
            if let Some(result) = finished {
                self.in_flight = None;
                done = Some(result??);
            }
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
        if let Some(rx) = self.in_flight.take() {
            // One roll at a time: the previous one must be durable first.
            done = Some(rx.await.map_err(|_| writer_gone())??);
        }
        let (Some(first), Some(next)) = (self.first, self.next) else {
            return Ok(done);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer()
            .send(Command::Roll {
                first,
                next,
                done: tx,
            })
            .await
            .map_err(|_| writer_gone())?;
        self.buffered = 0;
        self.first = None;
        self.since = None;
        self.next = None;
        if force {
            done = Some(rx.await.map_err(|_| writer_gone())??);
        } else {
            self.in_flight = Some(rx);
        }
        Ok(done)
    }

    fn reset(&mut self) {
        // The writer thread stops at its next command (or when the queue, dropped
        // here, runs dry) and deletes its open files.
        if let Some(w) = self.writer.take() {
            w.abandoned.store(true, Ordering::Release);
        }
        self.in_flight = None;
        self.buffered = 0;
        self.first = None;
        self.next = None;
        self.since = None;
    }
}
