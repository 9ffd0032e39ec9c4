//! Shipping the event log to Parquet files and Kafka topics.
//!
//! Each shipper reads the log's durable records (fsynced, so a power loss cannot
//! take them from the log after a sink has them) from its own persisted [`Cursor`],
//! hands them to a [`Sink`], and advances the cursor only after the sink says the
//! records are durable there. On start a cursor past the log's end is moved back and
//! the move recorded (`shipper_rewound`). A crash or an unreachable sink therefore never loses events: shipping
//! resumes from the cursor, and records after it may be delivered twice (consumers
//! deduplicate on the event id, which every record carries).

pub mod cluster;
mod cursor;
pub mod kafka;
pub mod parquet;
mod run;

pub use cursor::Cursor;
pub use run::{ShipOptions, Source, run};

use gatehouse_core::log::Offset;
use gatehouse_events::Event;

/// A shipping failure. The shipper backs off, rewinds to its cursor and retries.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] gatehouse_core::log::LogError),
    /// A file operation failed.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// File or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Encoding Parquet failed.
    #[error("parquet: {0}")]
    Parquet(String),
    /// The object store (shared audit) refused a file or could not be reached.
    #[error("object store: {0}")]
    Store(String),
    /// Kafka refused or timed out.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A worker task (decoding, encoding) died.
    #[error("shipper task failed: {0}")]
    Task(String),
    /// A cursor past the log's end cannot be moved back with a record of it.
    #[error("cannot rewind the shipper cursor: {0}")]
    Rewind(String),
}

impl ShipError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ShipError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Turns decoded records into a sink's batch. Runs on blocking threads, several
/// batches at once, so a sink's encoding (Arrow batches, OCSF JSON) uses every core.
pub type Encoder<B> = fn(Vec<(Offset, Event)>) -> Result<B, ShipError>;

/// A destination for log records.
///
/// The shipper reads raw records, then decodes and [encodes](Sink::encoder) batches
/// on worker threads, and hands the encoded batches to [`Sink::write`] in log order.
pub trait Sink: Send {
    /// Records encoded for this sink.
    type Batch: Send + 'static;

    /// Short name, used for the cursor file (`parquet`, `kafka`).
    fn name(&self) -> &str;

    /// The encoder for this sink's batches.
    fn encoder(&self) -> Encoder<Self::Batch>;

    /// Accepts a batch (batches arrive in offset order). May buffer.
    fn write(
        &mut self,
        batch: Self::Batch,
    ) -> impl std::future::Future<Output = Result<(), ShipError>> + Send;

    /// Makes buffered records durable if due (`force`: now). Returns the offset after
    /// the last record that is durable in the sink, if that advanced.
    fn flush(
        &mut self,
        force: bool,
    ) -> impl std::future::Future<Output = Result<Option<Offset>, ShipError>> + Send;

    /// Drops anything buffered (after an error; the shipper rewinds to its cursor).
    fn reset(&mut self);
}
