use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::log::{EventLog, LogConfig, LogError, LogReader, Offset};
use gatehouse_events::Event;
use gatehouse_events::payload::ShipperRewound;
use tokio::sync::watch;

use crate::{Cursor, Encoder, ShipError, Sink};

/// Where a shipper reads the log from.
#[derive(Clone)]
pub enum Source {
    /// The gateway's own log (in-process): wakes on appends.
    Live(Arc<EventLog>),
    /// A log directory another process writes: polls.
    Dir(PathBuf),
}

impl Source {
    /// A reader of durable records only: a sink never holds a record that a power
    /// loss can take from the log.
    fn reader(&self, from: Offset) -> LogReader {
        match self {
            Source::Live(log) => log.durable_reader(from),
            Source::Dir(dir) => LogReader::open_synced(dir.clone(), from),
        }
    }

    /// Where the log ended before anything was appended to it by this run: the
    /// highest position a cursor may hold.
    fn end(&self) -> Result<Offset, ShipError> {
        match self {
            Source::Live(log) => Ok(log.opened_at()),
            Source::Dir(dir) => Ok(gatehouse_core::log::end_offset(dir)?),
        }
    }

    /// Appends the record of a rewound cursor to the log.
    fn record(&self, event: &Event) -> Result<(), ShipError> {
        match self {
            Source::Live(log) => {
                log.append(event)?;
                log.sync()?;
                Ok(())
            }
            Source::Dir(dir) => match EventLog::open(LogConfig::new(dir.clone())) {
                Ok(log) => {
                    log.append(event)?;
                    log.sync()?;
                    Ok(())
                }
                Err(LogError::Locked(_)) => Err(ShipError::Rewind(format!(
                    "the log `{}` is in use by a running gateway, so the rewind cannot be recorded; ship from that gateway (`[shipping]`) or stop it first",
                    dir.display()
                ))),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Reconciles a persisted cursor with the log's end. A cursor past the end means the
/// log lost records the sink already holds (a torn tail cut after a power loss, a log
/// restored from a copy): the cursor moves back to the end, so new records at the
/// reused offsets are shipped, and a `shipper_rewound` event in the log says which
/// offsets the sink holds that the log does not.
fn reconcile(
    source: &Source,
    cursor: &mut Cursor,
    sink: &str,
    options: &ShipOptions,
) -> Result<(), ShipError> {
    let end = source.end()?;
    let at = cursor.next();
    if at <= end {
        return Ok(());
    }
    tracing::error!(
        message =
            "Shipper cursor is past the end of the event log; moving it back and recording it.",
        sink,
        cursor = at,
        log_end = end,
    );
    let event = Event::builder(
        &options.gateway_id,
        ShipperRewound {
            sink: sink.to_owned(),
            cursor: at,
            log_end: end,
        },
    )
    .build();
    source.record(&event)?;
    cursor.store(end)
}

/// Shipping loop settings.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// Directory of cursor files.
    pub cursor_dir: PathBuf,
    /// Records handed to the sink per call.
    pub batch: usize,
    /// Poll interval when reading a log directory, and the flush tick.
    pub poll: Duration,
    /// First retry delay after an error (doubles up to `max_backoff`).
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Stop once this offset is shipped and durable (tests and one-shot exports).
    pub stop_at: Option<Offset>,
    /// After being woken by an append, wait this long so records accumulate into
    /// batches instead of waking the shipper once per command.
    pub linger: Duration,
    /// Gateway id recorded in the events the shipper itself writes (`shipper_rewound`).
    pub gateway_id: String,
}

impl ShipOptions {
    /// Defaults with cursors in `cursor_dir`.
    pub fn new(cursor_dir: impl Into<PathBuf>) -> Self {
        Self {
            cursor_dir: cursor_dir.into(),
            batch: 4096,
            poll: Duration::from_millis(200),
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            stop_at: None,
            linger: Duration::from_millis(20),
            gateway_id: "gatehouse".into(),
        }
    }
}

/// Ships `source` to `sink` until `shutdown` turns true (then flushes), or until
/// `stop_at` is durable. Errors are retried forever with backoff; the cursor only
/// moves forward past durable records.
pub async fn run<S: Sink>(
    source: Source,
    mut sink: S,
    options: ShipOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Offset, ShipError> {
    let mut cursor = Cursor::load(&options.cursor_dir, sink.name())?;
    let name = sink.name().to_owned();
    // Until the rewind (if any) is recorded, nothing is shipped: retried like any
    // shipping error (the log may be failed for a while).
    let mut backoff = options.backoff;
    while let Err(error) = reconcile(&source, &mut cursor, &name, &options) {
        tracing::warn!(message = "Cannot reconcile the shipper cursor with the log; retrying.", sink = %name, %error, retry_in_ms = backoff.as_millis() as u64);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(cursor.next());
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
    tracing::info!(message = "Shipper starting.", sink = %name, from = cursor.next());
    let mut reader = source.reader(cursor.next());
    let mut decoding = Decoding::new(sink.encoder());
    backoff = options.backoff;
    loop {
        if *shutdown.borrow() {
            if let Some(done) = sink.flush(true).await? {
                cursor.store(done)?;
            }
            return Ok(cursor.next());
        }
        if options.stop_at.is_some_and(|stop| cursor.next() >= stop) {
            return Ok(cursor.next());
        }
        match step(&mut reader, &mut decoding, &mut sink, &mut cursor, &options).await {
            Ok(progress) => {
                backoff = options.backoff;
                if !progress {
                    let wait = async {
                        match &source {
                            Source::Live(_) => {
                                if let Ok(Ok(())) =
                                    tokio::time::timeout(options.poll, reader.wait()).await
                                {
                                    tokio::time::sleep(options.linger).await;
                                }
                            }
                            Source::Dir(_) => tokio::time::sleep(options.poll).await,
                        }
                    };
                    tokio::select! {
                        () = wait => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            Err(error) => {
                tracing::warn!(message = "Shipping failed; rewinding to the cursor and retrying.", sink = %name, cursor = cursor.next(), %error, retry_in_ms = backoff.as_millis() as u64);
                sink.reset();
                decoding.clear();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(options.max_backoff);
                reader = source.reader(cursor.next());
            }
        }
    }
}

/// Records read from the log but not yet decoded: payloads back to back in one buffer.
struct RawBatch {
    bytes: Vec<u8>,
    /// Offset of each record and the end of its payload in `bytes`.
    records: Vec<(Offset, usize)>,
}

impl RawBatch {
    fn decode(self) -> Result<Vec<(Offset, Event)>, ShipError> {
        let mut start = 0;
        let mut out = Vec::with_capacity(self.records.len());
        for (offset, end) in self.records {
            let json = self.bytes.get(start..end).unwrap_or_default();
            let event = Event::from_json(json)
                .map_err(|source| gatehouse_core::log::LogError::Decode { offset, source })?;
            out.push((offset, event));
            start = end;
        }
        Ok(out)
    }
}

/// Batches being decoded and encoded on blocking threads, in log order. Decoding
/// and encoding are most of a shipper's work; with one batch per core in flight they
/// run on every core while the sink takes the batch before.
struct Decoding<B> {
    encoder: Encoder<B>,
    /// Batches in flight: one per core (looked up once; it reads cgroup files).
    depth: usize,
    queue: std::collections::VecDeque<tokio::task::JoinHandle<Result<B, ShipError>>>,
}

impl<B: Send + 'static> Decoding<B> {
    fn new(encoder: Encoder<B>) -> Self {
        Self {
            encoder,
            depth: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue: std::collections::VecDeque::new(),
        }
    }

    /// Starts decoding batches until `depth` are in flight or the log is exhausted.
    fn fill(&mut self, reader: &mut LogReader, options: &ShipOptions) -> Result<(), ShipError> {
        while self.queue.len() < self.depth {
            let raw = read_raw(reader, options)?;
            if raw.records.is_empty() {
                break;
            }
            let encode = self.encoder;
            self.queue
                .push_back(tokio::task::spawn_blocking(move || encode(raw.decode()?)));
        }
        Ok(())
    }

    fn clear(&mut self) {
        for task in self.queue.drain(..) {
            task.abort();
        }
    }
}

/// Reads up to `options.batch` records (not past `stop_at`) without decoding them.
fn read_raw(reader: &mut LogReader, options: &ShipOptions) -> Result<RawBatch, ShipError> {
    let mut raw = RawBatch {
        bytes: Vec::new(),
        records: Vec::new(),
    };
    while raw.records.len() < options.batch {
        if options
            .stop_at
            .is_some_and(|stop| reader.next_offset() >= stop)
        {
            break;
        }
        match reader.next_raw(&mut raw.bytes)? {
            Some(offset) => {
                if raw.records.is_empty() {
                    // Size the buffers once, from the first record (a caught-up
                    // reader allocates nothing).
                    raw.records.reserve(options.batch);
                    raw.bytes
                        .reserve(options.batch.saturating_sub(1) * raw.bytes.len());
                }
                raw.records.push((offset, raw.bytes.len()));
            }
            None => break,
        }
    }
    Ok(raw)
}

/// Moves one batch; true when records were handed to the sink.
async fn step<S: Sink>(
    reader: &mut LogReader,
    decoding: &mut Decoding<S::Batch>,
    sink: &mut S,
    cursor: &mut Cursor,
    options: &ShipOptions,
) -> Result<bool, ShipError> {
    decoding.fill(reader, options)?;
    let progress = match decoding.queue.pop_front() {
        Some(task) => {
            let batch = task
                .await
                .map_err(|e| ShipError::Task(format!("decoding: {e}")))??;
            // Keep every core decoding while the sink takes this batch.
            decoding.fill(reader, options)?;
            sink.write(batch).await?;
            true
        }
        None => false,
    };
    let at_stop = options
        .stop_at
        .is_some_and(|stop| reader.next_offset() >= stop);
    if let Some(done) = sink.flush(!progress && at_stop).await? {
        cursor.store(done)?;
    }
    Ok(progress)
}
