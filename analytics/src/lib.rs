//! SQL over the Parquet audit.
