//! SQL over the Gatehouse Parquet audit, with DataFusion.
//!
//! [`Audit::open`] registers the `events` table over the hive-partitioned audit
//! directory (`day=YYYY-MM-DD/proto=...`), so filters on `day` and `proto` prune
//! whole directories, and the views of [`catalog::VIEWS`] (`decisions`,
//! `statements`, `ssh_commands`, `k8s_requests`, `sessions`, `approvals`, `alerts`,
//! ...). [`Audit::chains`] is the built-in lateral-movement hunt.

pub mod catalog;
pub mod chains;
mod sweep;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

/// Analytics failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// DataFusion refused the query or failed to run it.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The results could not be written (e.g. the reader of a pipe went away).
    #[error("cannot write the results")]
    Output(#[source] std::io::Error),
    /// The audit directory cannot be used.
    #[error("audit directory `{path}`: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The audit, ready for SQL.
pub struct Audit {
    ctx: SessionContext,
}

impl Audit {
    /// Registers the `events` table over `dir` (created if missing).
    pub async fn open(dir: &Path) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| AuditError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Self::register(
            SessionContext::new_with_config(Self::config()?),
            ListingTableUrl::parse(format!("{}/", dir.display()))?,
        )
        .await
    }

    /// Registers the `events` table over an object store: every gateway's files
    /// under `url` (`s3://bucket/prefix`), the shared audit of a cluster (ADR 0025).
    pub async fn open_store(
        url: &str,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Result<Self, AuditError> {
        let table = ListingTableUrl::parse(format!("{}/", url.trim_end_matches('/')))?;
        let ctx = SessionContext::new_with_config(Self::config()?);
        ctx.register_object_store(table.object_store().as_ref(), store);
        Self::register(ctx, table).await
    }

    fn config() -> Result<datafusion::prelude::SessionConfig, AuditError> {
        // DataFusion's options can be set with `DATAFUSION_*` environment variables
        // (e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`).
        Ok(datafusion::prelude::SessionConfig::from_env()?)
    }

    async fn register(ctx: SessionContext, url: ListingTableUrl) -> Result<Self, AuditError> {
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![
                ("day".into(), DataType::Utf8),
                ("proto".into(), DataType::Utf8),
            ]);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(gatehouse_events::arrow::schema());
        ctx.register_table("events", Arc::new(ListingTable::try_new(config)?))?;
        for (name, sql) in catalog::VIEWS {
            // The same DDL a `datafusion-cli` user would run.
            ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
                .await?
                .collect()
                .await?;
        }
        Ok(Self { ctx })
    }

    /// Streams every event (deduplicated) in time order, `since` (RFC 3339) if given,
    /// a batch at a time.
    pub async fn events_in_order(
        &self,
        since: Option<&str>,
    ) -> Result<datafusion::physical_plan::SendableRecordBatchStream, AuditError> {
        let filter = since
            .map(|t| format!("WHERE time >= TIMESTAMP '{}'", t.replace('\'', "''")))
            .unwrap_or_default();
        let df = self
            .ctx
            .sql(&format!(
                "SELECT * FROM events_dedup {filter} ORDER BY time, event_id"
            ))
            .await?;
        Ok(df.execute_stream().await?)
    }

    /// Runs the chain hunt: DataFusion scans of the three kinds of step, paired by a
    /// per-identity sweep. The rows are those of [`chains::ChainQuery::sql`].
    pub async fn chains(&self, query: &chains::ChainQuery) -> Result<Vec<RecordBatch>, AuditError> {
        sweep::run(self, query).await
    }

    /// Runs the chain hunt as the plain SQL of [`chains::ChainQuery::sql`] (what a
    /// `datafusion-cli` user pastes); the same rows as [`Audit::chains`], slower.
    pub async fn chains_sql(
        &self,
        query: &chains::ChainQuery,
    ) -> Result<Vec<RecordBatch>, AuditError> {
        self.sql(&query.sql()).await
    }

    /// Runs a query and collects the result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>, AuditError> {
        Ok(self.ctx.sql(query).await?.collect().await?)
    }

    /// The DataFusion session (for callers registering more tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Writes query results.
pub fn write_batches(
    out: &mut dyn std::io::Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), AuditError> {
    let mut out = Watched {
        inner: out,
        failed: None,
    };
    let written = encode(&mut out, batches, format);
    // The Arrow writers turn an I/O error into text; report the I/O error itself, so
    // that callers can tell a closed pipe from a failed query.
    match (written, out.failed) {
        (Err(_), Some(e)) => Err(AuditError::Output(e)),
        (result, _) => result,
    }
}

/// A writer that keeps its first I/O error.
struct Watched<'a> {
    inner: &'a mut dyn std::io::Write,
    failed: Option<std::io::Error>,
}

impl std::io::Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.keep(e))
    }
}

impl Watched<'_> {
    fn keep(&mut self, e: &std::io::Error) {
        if self.failed.is_none() {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
    }
}

/// CSV has no lists or structs (`tables_read`, `captured_values`, ...): such columns
/// are written as text, as the table format shows them (`[a, b]`).
fn flat_for_csv(batch: &RecordBatch) -> Result<RecordBatch, AuditError> {
    use datafusion::arrow::array::{ArrayRef, StringBuilder};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let nested = |t: &DataType| t.is_nested();
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let arrow = |e| {
        AuditError::DataFusion(datafusion::error::DataFusionError::ArrowError(
            Box::new(e),
            None,
        ))
    };
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !nested(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(std::sync::Arc::clone(column));
            continue;
        }
        let options = FormatOptions::default();
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options).map_err(arrow)?;
        let mut text = StringBuilder::with_capacity(column.len(), column.len() * 16);
        for i in 0..column.len() {
            if column.is_null(i) {
                text.append_null();
            } else {
                text.append_value(formatter.value(i).to_string());
            }
        }
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(std::sync::Arc::new(text.finish()));
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).map_err(arrow)
}

fn encode(
    out: &mut dyn std::io::Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<(), AuditError> {
    match format {
        OutputFormat::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .map_err(datafusion::error::DataFusionError::from)?;
            writeln!(out, "{table}").map_err(AuditError::Output)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(out);
            for b in batches {
                w.write(&flat_for_csv(b)?)
                    .map_err(datafusion::error::DataFusionError::from)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow_json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)
                    .map_err(datafusion::error::DataFusionError::from)?;
            }
            w.finish()
                .map_err(datafusion::error::DataFusionError::from)?;
        }
    }
    Ok(())
}
