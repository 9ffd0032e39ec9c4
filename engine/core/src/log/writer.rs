//! The append path: encoding, the hash chain, rotation, fsync scheduling.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use gatehouse_events::Event;
use tokio::sync::watch;

use crate::log::reader::LogReader;
use crate::log::record::{self, Hash, MAX_PAYLOAD, SEGMENT_HEADER_LEN};
use crate::log::segment::{self, Tail, list_segments, segment_path};
use crate::log::{Durability, LogConfig, LogError, Offset};

/// The writable event log. Share it behind an `Arc`; appends from many threads are
/// serialised on one lock held only for the `write(2)`.
pub struct EventLog {
    inner: Arc<Inner>,
    syncer: Option<JoinHandle<()>>,
}

struct Inner {
    config: LogConfig,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    kick: Condvar,
    durable_cv: Condvar,
    written_tx: watch::Sender<Offset>,
    durable_tx: watch::Sender<Durable>,
    _lock: File,
}

struct Writer {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    next: Offset,
    last_hash: Hash,
    buf: Vec<u8>,
    failed: Option<String>,
}

#[derive(Debug, Default)]
struct SyncState {
    requested: bool,
    shutdown: bool,
    durable: Offset,
    failed: Option<String>,
}

/// Durable watermark published to async waiters.
#[derive(Debug, Clone, Default)]
struct Durable {
    offset: Offset,
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (every field
    // update is a plain store), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventLog {
    /// Opens (or creates) the log in `config.dir`, recovering from a crash: a torn
    /// tail is truncated, corruption is an error.
    pub fn open(config: LogConfig) -> Result<Self, LogError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io(&lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e)),
        }
        let writer = recover(&dir)?;
        let next = writer.next;
        let (written_tx, _) = watch::channel(next);
        let (durable_tx, _) = watch::channel(Durable {
            offset: next,
            failed: None,
        });
        let inner = Arc::new(Inner {
            config,
            writer: Mutex::new(writer),
            sync: Mutex::new(SyncState {
                durable: next,
                ..SyncState::default()
            }),
            kick: Condvar::new(),
            durable_cv: Condvar::new(),
            written_tx,
            durable_tx,
            _lock: lock_file,
        });
        let for_thread = inner.clone();
        let syncer = std::thread::Builder::new()
            .name("gatehouse-log-sync".into())
            .spawn(move || syncer(&for_thread))
            .map_err(|e| LogError::io(&dir, e))?;
        Ok(Self {
            inner,
            syncer: Some(syncer),
        })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.inner.config.durability
    }

    /// Offset after the last fsynced record.
    pub fn durable_offset(&self) -> Offset {
        lock(&self.inner.sync).durable
    }

    /// Offset the next appended record will get (= number of records ever appended).
    pub fn next_offset(&self) -> Offset {
        *self.inner.written_tx.borrow()
    }

    /// Appends one event. Returns its offset once it is written (`batch`) or durable
    /// (`strict`).
    pub fn append(&self, event: &Event) -> Result<Offset, LogError> {
        self.append_batch(std::slice::from_ref(event))
            .map(|r| r.start)
    }

    /// Appends events atomically in one write; returns their offsets.
    pub fn append_batch(&self, events: &[Event]) -> Result<Range<Offset>, LogError> {
        let range = self.write(events)?;
        if self.inner.config.durability == Durability::Strict {
            self.wait_durable(range.end)?;
        }
        Ok(range)
    }

    /// Like [`append_batch`](Self::append_batch), but waits for `strict` durability
    /// without blocking the async runtime.
    pub async fn append_batch_async(&self, events: &[Event]) -> Result<Range<Offset>, LogError> {
        let range = self.write(events)?;
        if self.inner.config.durability == Durability::Strict {
            self.request_sync();
            let mut rx = self.inner.durable_tx.subscribe();
            let state = rx
                .wait_for(|d| d.offset >= range.end || d.failed.is_some())
                .await
                .map_err(|_| LogError::Closed)?;
            if let Some(f) = &state.failed {
                return Err(LogError::Failed(f.clone()));
            }
        }
        Ok(range)
    }

    /// Appends pre-encoded payloads (native event JSON). Used by tools that copy logs.
    fn write(&self, events: &[Event]) -> Result<Range<Offset>, LogError> {
        let mut payloads = Vec::with_capacity(events.len());
        for e in events {
            let mut p = Vec::with_capacity(768);
            gatehouse_events::json::write_event(&mut p, e).map_err(LogError::Encode)?;
            if p.len() > MAX_PAYLOAD as usize {
                return Err(LogError::TooLarge(p.len()));
            }
            payloads.push(p);
        }
        self.write_payloads(&payloads)
    }

    fn write_payloads(&self, payloads: &[Vec<u8>]) -> Result<Range<Offset>, LogError> {
        let inner = &*self.inner;
        let mut w = lock(&inner.writer);
        if let Some(f) = &w.failed {
            return Err(LogError::Failed(f.clone()));
        }
        let total: usize = payloads
            .iter()
            .map(|p| p.len() + record::RECORD_HEADER_LEN)
            .sum();
        if w.len > SEGMENT_HEADER_LEN as u64 && w.len + total as u64 > inner.config.segment_bytes {
            rotate(&inner.config.dir, &mut w)?;
        }
        let start = w.next;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        let mut prev = w.last_hash;
        for (i, p) in payloads.iter().enumerate() {
            prev = record::encode_record(&mut buf, start + i as u64, &prev, p);
        }
        let file = w.file.clone();
        if let Err(e) = (&*file).write_all(&buf) {
            // Cut any partial write so the file ends on a record boundary, and refuse
            // further appends: the caller must not proceed without its event logged.
            let _ = file.set_len(w.len);
            let err = LogError::io(&w.path, e);
            w.failed = Some(err.to_string());
            w.buf = buf;
            return Err(err);
        }
        w.len += buf.len() as u64;
        w.last_hash = prev;
        w.next = start + payloads.len() as u64;
        let end = w.next;
        w.buf = buf;
        drop(w);
        // Waking readers costs a lock and a notification; skip it when none exist.
        if inner.written_tx.receiver_count() == 0 {
            inner.written_tx.send_if_modified(|v| {
                *v = (*v).max(end);
                false
            });
            return Ok(start..end);
        }
        inner.written_tx.send_if_modified(|v| {
            if end > *v {
                *v = end;
                true
            } else {
                false
            }
        });
        Ok(start..end)
    }

    fn request_sync(&self) {
        let mut s = lock(&self.inner.sync);
        s.requested = true;
        self.inner.kick.notify_one();
    }

    /// Blocks until every record below `end` is fsynced.
    pub fn wait_durable(&self, end: Offset) -> Result<(), LogError> {
        let inner = &*self.inner;
        let mut s = lock(&inner.sync);
        loop {
            if let Some(f) = &s.failed {
                return Err(LogError::Failed(f.clone()));
            }
            if s.durable >= end {
                return Ok(());
            }
            if s.shutdown {
                return Err(LogError::Closed);
            }
            s.requested = true;
            inner.kick.notify_one();
            s = inner
                .durable_cv
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// fsyncs everything written so far.
    pub fn sync(&self) -> Result<(), LogError> {
        self.wait_durable(self.next_offset())
    }

    /// A watch of the written watermark (offset after the last written record).
    pub fn subscribe(&self) -> watch::Receiver<Offset> {
        self.inner.written_tx.subscribe()
    }

    /// Reads records from `from`, never past the written watermark.
    pub fn reader(&self, from: Offset) -> LogReader {
        LogReader::with_limit(self.inner.config.dir.clone(), from, self.subscribe())
    }

    /// Removes closed segments that every consumer has passed (`keep_from` is the
    /// lowest offset still needed) and that the retention limits say to drop.
    /// Returns the removed files.
    pub fn apply_retention(&self, keep_from: Offset) -> Result<Vec<PathBuf>, LogError> {
        let dir = &self.inner.config.dir;
        let retention = self.inner.config.retention;
        let segments = list_segments(dir)?;
        let mut sizes = Vec::with_capacity(segments.len());
        for s in &segments {
            let meta = fs::metadata(&s.path).map_err(|e| LogError::io(&s.path, e))?;
            sizes.push((meta.len(), meta.modified().unwrap_or(SystemTime::now())));
        }
        let mut total: u64 = sizes.iter().map(|(len, _)| len).sum();
        let mut removed = Vec::new();
        // Never the last (active) segment; only segments wholly below keep_from.
        for (i, seg) in segments.iter().enumerate() {
            let Some(next) = segments.get(i + 1) else {
                break;
            };
            if next.base > keep_from {
                break;
            }
            let Some(&(len, modified)) = sizes.get(i) else {
                break;
            };
            let too_old = retention
                .max_age
                .is_some_and(|age| modified.elapsed().unwrap_or(Duration::ZERO) > age);
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                break;
            }
            fs::remove_file(&seg.path).map_err(|e| LogError::io(&seg.path, e))?;
            total -= len;
            removed.push(seg.path.clone());
        }
        if !removed.is_empty() {
            segment::sync_dir(dir)?;
        }
        Ok(removed)
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.inner.sync);
            s.shutdown = true;
            s.requested = true;
            self.inner.kick.notify_one();
        }
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
    }
}

fn syncer(inner: &Inner) {
    let interval = match inner.config.durability {
        Durability::Strict => None,
        Durability::Batch { interval_ms } => Some(Duration::from_millis(interval_ms.max(1))),
    };
    loop {
        let shutdown = {
            let mut s = lock(&inner.sync);
            while !s.requested && !s.shutdown {
                match interval {
                    Some(d) => {
                        let (g, timeout) = inner
                            .kick
                            .wait_timeout(s, d)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        s = g;
                        if timeout.timed_out() {
                            break;
                        }
                    }
                    None => {
                        s = inner
                            .kick
                            .wait(s)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
            }
            s.requested = false;
            s.shutdown
        };
        let (file, path, target) = {
            let w = lock(&inner.writer);
            (w.file.clone(), w.path.clone(), w.next)
        };
        let durable = lock(&inner.sync).durable;
        if target > durable {
            let result = file.sync_data();
            let mut s = lock(&inner.sync);
            match result {
                Ok(()) => s.durable = s.durable.max(target),
                Err(e) => {
                    // fsync failure is not retryable (the page cache may have dropped
                    // the dirty pages): fail the log, as PostgreSQL does.
                    let msg = LogError::io(&path, e).to_string();
                    tracing::error!(message = "Event log fsync failed; refusing further appends.", error = %msg);
                    lock(&inner.writer).failed = Some(msg.clone());
                    s.failed = Some(msg);
                }
            }
            let published = Durable {
                offset: s.durable,
                failed: s.failed.clone(),
            };
            inner.durable_cv.notify_all();
            drop(s);
            inner.durable_tx.send_replace(published);
        } else {
            inner.durable_cv.notify_all();
        }
        if shutdown {
            let mut s = lock(&inner.sync);
            s.shutdown = true;
            inner.durable_cv.notify_all();
            return;
        }
    }
}

fn create_segment(dir: &Path, base: Offset, prev: &Hash) -> Result<(File, PathBuf), LogError> {
    let path = segment_path(dir, base);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| LogError::io(&path, e))?;
    file.write_all(&record::encode_segment_header(base, prev))
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io(&path, e))?;
    segment::sync_dir(dir)?;
    Ok((file, path))
}

fn rotate(dir: &Path, w: &mut Writer) -> Result<(), LogError> {
    let fail = |w: &mut Writer, e: LogError| {
        w.failed = Some(e.to_string());
        e
    };
    if let Err(e) = w.file.sync_data() {
        let err = LogError::io(&w.path, e);
        return Err(fail(w, err));
    }
    match create_segment(dir, w.next, &w.last_hash) {
        Ok((file, path)) => {
            w.file = Arc::new(file);
            w.path = path;
            w.len = SEGMENT_HEADER_LEN as u64;
            Ok(())
        }
        Err(e) => Err(fail(w, e)),
    }
}

/// Opens the last segment for appending, truncating a torn tail.
fn recover(dir: &Path) -> Result<Writer, LogError> {
    let mut segments = list_segments(dir)?;
    loop {
        let Some(last) = segments.last().cloned() else {
            let (file, path) = create_segment(dir, 0, &[0u8; 32])?;
            return Ok(Writer {
                file: Arc::new(file),
                path,
                len: SEGMENT_HEADER_LEN as u64,
                next: 0,
                last_hash: [0u8; 32],
                buf: Vec::new(),
                failed: None,
            });
        };
        let bytes = segment::read_segment(&last.path)?;
        let scan = match segment::scan(&bytes, |_| {}) {
            Ok(scan) => scan,
            Err(record::Invalid::Short) => {
                // Crash while creating the segment: it holds no record. Remove it.
                tracing::warn!(message = "Removing a segment torn during creation.", path = %last.path.display());
                fs::remove_file(&last.path).map_err(|e| LogError::io(&last.path, e))?;
                segment::sync_dir(dir)?;
                segments.pop();
                continue;
            }
            Err(record::Invalid::Bad(reason)) => {
                return Err(LogError::Corrupt {
                    offset: last.base,
                    segment: last.path.clone(),
                    position: 0,
                    reason: reason.into(),
                });
            }
        };
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { position, reason } => {
                tracing::warn!(
                    message = "Truncating a torn tail left by a crash.",
                    path = %last.path.display(),
                    position,
                    dropped_bytes = bytes.len() as u64 - position,
                    reason = %reason,
                );
                segment::truncate(&last.path, *position)?;
            }
            Tail::Corrupt {
                position,
                offset,
                reason,
            } => {
                return Err(LogError::Corrupt {
                    offset: *offset,
                    segment: last.path.clone(),
                    position: *position,
                    reason: reason.clone(),
                });
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&last.path)
            .map_err(|e| LogError::io(&last.path, e))?;
        return Ok(Writer {
            file: Arc::new(file),
            path: last.path,
            len: scan.valid_len,
            next: scan.next_offset,
            last_hash: scan.last_hash,
            buf: Vec::new(),
            failed: None,
        });
    }
}
