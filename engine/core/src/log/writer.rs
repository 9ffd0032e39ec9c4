//! The append path: encoding, the hash chain, rotation, fsync scheduling, and
//! recovery from a failed write or fsync without a restart.
//!
//! A failed `write(2)` (a full disk) cuts the file back to its last record boundary;
//! a failed fsync means the kernel may have dropped the written pages. Either way the
//! log refuses appends from then on ([`Failure`]) until [`EventLog::recover`] repairs
//! the file: it cuts it back to its length at the last good fsync, writes again every
//! byte written since (the writer keeps them, see `Writer::unsynced`), fsyncs, and
//! appends the caller's outage event as the first record after the outage.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use gatehouse_events::Event;
use tokio::sync::watch;

use crate::log::reader::{Limit, LogReader};
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
    /// The log's end when it was opened (after crash recovery), before any append.
    opened_at: Offset,
    stats: Stats,
    _lock: File,
}

/// Counters since the log was opened (for `/metrics`).
#[derive(Debug, Default)]
struct Stats {
    failures: AtomicU64,
    refused: AtomicU64,
    recoveries: AtomicU64,
}

/// What the log counted since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Times the log failed (a write or an fsync).
    pub failures: u64,
    /// Appends refused because the log was failed.
    pub refused_appends: u64,
    /// Times it recovered.
    pub recoveries: u64,
}

struct Writer {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    next: Offset,
    last_hash: Hash,
    /// The current file's bytes from `synced_len` to `len`: written, not yet known to
    /// be on disk. Each write encodes its records at the end of this buffer and writes
    /// them from there (no copy); the syncer drops what an fsync covered. After a
    /// failed fsync they are written again by recovery.
    unsynced: Vec<u8>,
    /// Length of the current file at its last successful fsync.
    synced_len: u64,
    failure: Option<Failure>,
}

/// Why the log refuses appends: what failed, since when, and what it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error that failed the log.
    pub error: String,
    /// When it failed.
    pub since: DateTime<Utc>,
    /// Appends refused since.
    pub refused_appends: u64,
    /// Recovery attempts that failed since.
    pub failed_attempts: u64,
    /// An fsync failed: nothing is durable past the last good fsync until recovery
    /// writes it again, so the syncer stops (a second fsync would report success for
    /// pages the kernel dropped).
    sync_failed: bool,
}

impl Failure {
    fn new(error: String, sync_failed: bool) -> Self {
        Self {
            error,
            since: Utc::now(),
            refused_appends: 0,
            failed_attempts: 0,
            sync_failed,
        }
    }
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
pub(crate) struct Durable {
    pub(crate) offset: Offset,
    pub(crate) failed: Option<String>,
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
        let opened_at = next;
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
            opened_at,
            stats: Stats::default(),
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

    /// The log's end when it was opened, after crash recovery cut any torn tail and
    /// before this process appended anything: where every consumer's position must
    /// be at or below (shippers reconcile their cursors with it).
    pub fn opened_at(&self) -> Offset {
        self.inner.opened_at
    }

    /// Why the log refuses appends, when it does.
    pub fn failure(&self) -> Option<Failure> {
        lock(&self.inner.writer).failure.clone()
    }

    /// Failures, refusals and recoveries since the log was opened.
    pub fn stats(&self) -> LogStats {
        let s = &self.inner.stats;
        LogStats {
            failures: s.failures.load(Ordering::Relaxed),
            refused_appends: s.refused.load(Ordering::Relaxed),
            recoveries: s.recoveries.load(Ordering::Relaxed),
        }
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
        let range = self.write_batch(events)?;
        self.durable_async(range.end).await?;
        Ok(range)
    }

    /// The first half of [`append_batch_async`](Self::append_batch_async): writes the
    /// events (to the OS, in log order) and returns at once. A caller that must order
    /// its writes with other work (ADR 0024) writes under its own lock, then waits
    /// with [`durable_async`](Self::durable_async) after releasing it, so that
    /// concurrent appenders still share one fsync.
    pub fn write_batch(&self, events: &[Event]) -> Result<Range<Offset>, LogError> {
        self.write(events)
    }

    /// The second half: under `strict` durability, waits until `end` is durable (or
    /// the log failed); under `batch`, returns at once.
    pub async fn durable_async(&self, end: Offset) -> Result<(), LogError> {
        if self.inner.config.durability == Durability::Strict {
            self.request_sync();
            let mut rx = self.inner.durable_tx.subscribe();
            let state = rx
                .wait_for(|d| d.offset >= end || d.failed.is_some())
                .await
                .map_err(|_| LogError::Closed)?;
            if let Some(f) = &state.failed {
                return Err(LogError::Failed(f.clone()));
            }
        }
        Ok(())
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
        if let Some(f) = &mut w.failure {
            f.refused_appends += 1;
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LogError::Failed(f.error.clone()));
        }
        let range = write_locked(&inner.config, &mut w, payloads).inspect_err(|_| {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        })?;
        drop(w);
        self.publish_written(range.end);
        Ok(range)
    }

    fn publish_written(&self, end: Offset) {
        let inner = &*self.inner;
        // Waking readers costs a lock and a notification; skip it when none exist.
        if inner.written_tx.receiver_count() == 0 {
            inner.written_tx.send_if_modified(|v| {
                *v = (*v).max(end);
                false
            });
            return;
        }
        inner.written_tx.send_if_modified(|v| {
            if end > *v {
                *v = end;
                true
            } else {
                false
            }
        });
    }

    /// Brings a failed log back: cuts the active segment back to its length at the
    /// last good fsync, writes again every byte written since, fsyncs, and appends
    /// `outage(&failure)` as the first record after the outage, durably, before any
    /// other append can run. Returns its offset, or `None` when the log was not
    /// failed. On error the log stays failed (the attempt is counted) and the caller
    /// tries again later.
    pub fn recover(
        &self,
        outage: impl FnOnce(&Failure) -> Event,
    ) -> Result<Option<Offset>, LogError> {
        let inner = &*self.inner;
        // Lock order everywhere: sync state, then writer.
        let mut s = lock(&inner.sync);
        let mut w = lock(&inner.writer);
        let Some(failure) = w.failure.clone() else {
            return Ok(None);
        };
        let attempt = headroom(&inner.config.dir)
            .and_then(|()| repair(&mut w))
            .and_then(|()| {
                let mut payload = Vec::with_capacity(512);
                gatehouse_events::json::write_event(&mut payload, &outage(&failure))
                    .map_err(LogError::Encode)?;
                let at = write_locked(&inner.config, &mut w, std::slice::from_ref(&payload))?;
                sync_file(&w.file, &w.path).map_err(|e| LogError::io(&w.path, e))?;
                w.synced_len = w.len;
                w.unsynced.clear();
                Ok(at.start)
            });
        match attempt {
            Ok(at) => {
                w.failure = None;
                inner.stats.recoveries.fetch_add(1, Ordering::Relaxed);
                let end = w.next;
                drop(w);
                s.failed = None;
                s.durable = s.durable.max(end);
                let published = Durable {
                    offset: s.durable,
                    failed: None,
                };
                inner.durable_cv.notify_all();
                drop(s);
                inner.durable_tx.send_replace(published);
                self.publish_written(end);
                tracing::info!(
                    message = "Event log recovered; appends resume.",
                    refused_appends = failure.refused_appends,
                    failed_attempts = failure.failed_attempts,
                    outage_record = at
                );
                Ok(Some(at))
            }
            Err(e) => {
                // write_locked may have replaced the failure with its own; keep the
                // outage's start and counts.
                let mut kept = failure;
                kept.failed_attempts += 1;
                // The segment may hold a part of what repair wrote: nothing past the
                // last good fsync counts as durable until an attempt succeeds.
                kept.sync_failed = true;
                w.failure = Some(kept);
                Err(e)
            }
        }
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
        LogReader::with_limit(
            self.inner.config.dir.clone(),
            from,
            Limit::Written(self.subscribe()),
        )
    }

    /// Reads records from `from`, never past the durable (fsynced) watermark: what
    /// shippers read, so that no sink ever holds a record a power loss can take from
    /// the log.
    pub fn durable_reader(&self, from: Offset) -> LogReader {
        LogReader::with_limit(
            self.inner.config.dir.clone(),
            from,
            Limit::Durable(self.inner.durable_tx.subscribe()),
        )
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
        let snapshot = {
            let w = lock(&inner.writer);
            if w.failure.as_ref().is_some_and(|f| f.sync_failed) {
                // Nothing past the last good fsync is durable until recovery writes
                // it again; an fsync now could report success for dropped pages.
                None
            } else {
                Some((w.file.clone(), w.path.clone(), w.next, w.len))
            }
        };
        let durable = lock(&inner.sync).durable;
        match snapshot {
            Some((file, path, target, len)) if target > durable => {
                let result = sync_file(&file, &path);
                match result {
                    Ok(()) => {
                        {
                            let mut w = lock(&inner.writer);
                            // Drop the bytes this fsync covered, unless the file was
                            // rotated (rotation synced and cleared them) or failed
                            // meanwhile (recovery rewrites from the last good fsync).
                            if Arc::ptr_eq(&w.file, &file)
                                && w.failure.is_none()
                                && len > w.synced_len
                            {
                                let n = usize::try_from(len - w.synced_len).unwrap_or(usize::MAX);
                                let n = n.min(w.unsynced.len());
                                w.unsynced.drain(..n);
                                w.synced_len = len;
                            }
                        }
                        let mut s = lock(&inner.sync);
                        s.durable = s.durable.max(target);
                        publish_durable(inner, s);
                    }
                    Err(e) => {
                        // fsync failure is not retryable (the page cache may have
                        // dropped the dirty pages): refuse appends until recovery has
                        // written them again, as PostgreSQL replays its WAL.
                        let msg = LogError::io(&path, e).to_string();
                        tracing::error!(message = "Event log fsync failed; refusing appends until it is repaired.", error = %msg);
                        {
                            let mut w = lock(&inner.writer);
                            match &mut w.failure {
                                Some(f) => f.sync_failed = true,
                                None => {
                                    inner.stats.failures.fetch_add(1, Ordering::Relaxed);
                                    w.failure = Some(Failure::new(msg.clone(), true));
                                }
                            }
                        }
                        let mut s = lock(&inner.sync);
                        s.failed = Some(msg);
                        publish_durable(inner, s);
                    }
                }
            }
            _ => inner.durable_cv.notify_all(),
        }
        if shutdown {
            let mut s = lock(&inner.sync);
            s.shutdown = true;
            inner.durable_cv.notify_all();
            return;
        }
    }
}

/// Publishes the durable watermark (and failure) to blocking and async waiters.
fn publish_durable(inner: &Inner, s: MutexGuard<'_, SyncState>) {
    let published = Durable {
        offset: s.durable,
        failed: s.failed.clone(),
    };
    inner.durable_cv.notify_all();
    drop(s);
    inner.durable_tx.send_replace(published);
}

/// fsyncs a segment's data (tests inject failures here).
fn sync_file(file: &File, path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if tests::injected_sync_failure(path) {
        return Err(std::io::Error::other("injected fsync failure"));
    }
    let _ = path;
    file.sync_data()
}

/// Encodes and writes records at the end of the active segment (rotating first when
/// it is full), with the writer locked. On failure the file is cut back to its last
/// record boundary and the log is marked failed.
fn write_locked(
    config: &LogConfig,
    w: &mut Writer,
    payloads: &[Vec<u8>],
) -> Result<Range<Offset>, LogError> {
    let total: usize = payloads
        .iter()
        .map(|p| p.len() + record::RECORD_HEADER_LEN)
        .sum();
    if w.len > SEGMENT_HEADER_LEN as u64 && w.len + total as u64 > config.segment_bytes {
        rotate(&config.dir, w)?;
    }
    let start = w.next;
    let old = w.unsynced.len();
    w.unsynced.reserve(total);
    let mut prev = w.last_hash;
    for (i, p) in payloads.iter().enumerate() {
        prev = record::encode_record(&mut w.unsynced, start + i as u64, &prev, p);
    }
    let written = (&*w.file).write_all(w.unsynced.get(old..).unwrap_or_default());
    if let Err(e) = written {
        // Cut any partial write so the file ends on a record boundary, and refuse
        // further appends: the caller must not proceed without its event logged.
        let _ = w.file.set_len(w.len);
        w.unsynced.truncate(old);
        let err = LogError::io(&w.path, e);
        tracing::error!(message = "Event log write failed; refusing appends until it is repaired.", error = %err);
        w.failure = Some(Failure::new(err.to_string(), false));
        return Err(err);
    }
    w.len += (w.unsynced.len() - old) as u64;
    w.last_hash = prev;
    w.next = start + payloads.len() as u64;
    Ok(start..w.next)
}

/// Free space a failed log waits for before it resumes: with less, a disk that had
/// room for the outage record but not for the next command would make every other
/// command fail.
pub const RECOVERY_HEADROOM: u64 = 1024 * 1024;

/// Whether the log's file system has [`RECOVERY_HEADROOM`] free.
fn headroom(dir: &Path) -> Result<(), LogError> {
    let stat = rustix::fs::statvfs(dir)
        .map_err(|e| LogError::io(dir, std::io::Error::from_raw_os_error(e.raw_os_error())))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < RECOVERY_HEADROOM {
        return Err(LogError::Failed(format!(
            "{free} bytes free on the file system of `{}`; appends resume once {RECOVERY_HEADROOM} are",
            dir.display()
        )));
    }
    Ok(())
}

/// Makes the active segment hold exactly what the writer wrote: cut back to the last
/// good fsync, write again what was written since, fsync.
fn repair(w: &mut Writer) -> Result<(), LogError> {
    let io = |w: &Writer, e: std::io::Error| LogError::io(&w.path, e);
    w.file.set_len(w.synced_len).map_err(|e| io(w, e))?;
    (&*w.file).write_all(&w.unsynced).map_err(|e| io(w, e))?;
    sync_file(&w.file, &w.path).map_err(|e| io(w, e))?;
    let on_disk = w.file.metadata().map_err(|e| io(w, e))?.len();
    if on_disk != w.len {
        return Err(LogError::Failed(format!(
            "`{}` holds {on_disk} bytes after repair, {} expected",
            w.path.display(),
            w.len
        )));
    }
    w.synced_len = w.len;
    w.unsynced.clear();
    Ok(())
}

fn create_segment(dir: &Path, base: Offset, prev: &Hash) -> Result<(File, PathBuf), LogError> {
    let path = segment_path(dir, base);
    let mut file = match OpenOptions::new().create_new(true).append(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by a creation that failed half way (no record can be in it: its
            // base is past every record). Start it again.
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX);
            if len > SEGMENT_HEADER_LEN as u64 {
                return Err(LogError::io(&path, e));
            }
            fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| LogError::io(&path, e))?
        }
        Err(e) => return Err(LogError::io(&path, e)),
    };
    let written = file
        .write_all(&record::encode_segment_header(base, prev))
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io(&path, e))
        .and_then(|()| segment::sync_dir(dir));
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((file, path))
}

fn rotate(dir: &Path, w: &mut Writer) -> Result<(), LogError> {
    let fail = |w: &mut Writer, e: LogError, sync_failed: bool| {
        w.failure = Some(Failure::new(e.to_string(), sync_failed));
        e
    };
    if let Err(e) = sync_file(&w.file, &w.path) {
        let err = LogError::io(&w.path, e);
        return Err(fail(w, err, true));
    }
    w.synced_len = w.len;
    w.unsynced.clear();
    match create_segment(dir, w.next, &w.last_hash) {
        Ok((file, path)) => {
            w.file = Arc::new(file);
            w.path = path;
            w.len = SEGMENT_HEADER_LEN as u64;
            w.synced_len = w.len;
            Ok(())
        }
        Err(e) => Err(fail(w, e, false)),
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
                unsynced: Vec::new(),
                synced_len: SEGMENT_HEADER_LEN as u64,
                failure: None,
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
        // What recovery read back may still sit in the page cache only (a process
        // crash): make it durable before anything is appended after it.
        file.sync_data().map_err(|e| LogError::io(&last.path, e))?;
        return Ok(Writer {
            file: Arc::new(file),
            path: last.path,
            len: scan.valid_len,
            next: scan.next_offset,
            last_hash: scan.last_hash,
            unsynced: Vec::new(),
            synced_len: scan.valid_len,
            failure: None,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "test code"
    )]

    use gatehouse_events::payload::{LogOutage, Payload};

    use super::*;
    use crate::log::LogReader;

    /// fsyncs of files under a directory to fail before the real ones run again.
    static FAIL_SYNCS: Mutex<Option<(PathBuf, u32)>> = Mutex::new(None);

    pub(super) fn injected_sync_failure(path: &Path) -> bool {
        let mut f = lock(&FAIL_SYNCS);
        match &mut *f {
            Some((dir, n)) if *n > 0 && path.starts_with(&*dir) => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn event(i: u64) -> Event {
        gatehouse_events::synth::sample(i, "gw")
    }

    fn outage(f: &Failure) -> Event {
        Event::builder(
            "gw",
            LogOutage {
                started_at: f.since,
                ended_at: Utc::now(),
                error: f.error.clone(),
                refused_appends: f.refused_appends,
                failed_attempts: f.failed_attempts,
            },
        )
        .build()
    }

    #[test]
    fn a_failed_fsync_refuses_appends_until_recovery_writes_the_records_again() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = LogConfig::new(tmp.path());
        config.durability = Durability::Strict;
        let log = EventLog::open(config).unwrap();
        let sent: Vec<Event> = (0..5).map(event).collect();
        log.append(&sent[0]).unwrap();
        // The next fsync fails: the append was written, but it is not durable.
        *lock(&FAIL_SYNCS) = Some((tmp.path().to_owned(), 1));
        let err = log.append(&sent[1]).unwrap_err();
        assert!(err.to_string().contains("injected fsync failure"), "{err}");
        let failure = log.failure().expect("the log is failed");
        assert!(failure.sync_failed);
        // Refused while failed, and counted.
        assert!(matches!(log.append(&sent[2]), Err(LogError::Failed(_))));
        assert!(matches!(log.append(&sent[3]), Err(LogError::Failed(_))));
        assert_eq!(log.failure().unwrap().refused_appends, 2);
        // The syncer does not fsync a failed log: the durable mark stays put.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(log.durable_offset(), 1);

        // Simulate the kernel having dropped the unsynced page: the record on disk
        // is damaged. Recovery writes it again from the writer's copy.
        let seg = crate::log::list_segments(tmp.path())
            .unwrap()
            .remove(0)
            .path;
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();

        let at = log.recover(outage).unwrap().expect("recovered");
        assert_eq!(at, 2);
        assert!(log.failure().is_none());
        assert_eq!(log.durable_offset(), 3);
        log.append(&sent[4]).unwrap();
        drop(log);
        assert_eq!(crate::log::verify(tmp.path()).unwrap().problem, None);
        let events: Vec<Event> = LogReader::open(tmp.path(), 0)
            .map(|r| r.unwrap().event().unwrap())
            .collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1], sent[1], "the unsynced record is written again");
        match &events[2].payload {
            Payload::LogOutage(o) => {
                assert_eq!(o.refused_appends, 2);
                assert!(o.error.contains("injected fsync failure"));
            }
            other => panic!("expected the outage record, got {other:?}"),
        }
        assert_eq!(events[3], sent[4]);
    }

    #[test]
    fn recovering_a_healthy_log_does_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let log = EventLog::open(LogConfig::new(tmp.path())).unwrap();
        log.append(&event(0)).unwrap();
        assert_eq!(log.recover(outage).unwrap(), None);
        assert_eq!(log.next_offset(), 1);
    }
}
