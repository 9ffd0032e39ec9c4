//! The shared audit's object store (S3 API, ADR 0025 §6): opened from a URL
//! `s3://BUCKET[/PREFIX]`, the standard `AWS_*` environment variables and the
//! options given (from `[shipping.parquet]`), for `serve` and the audit commands.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

/// An audit location that is an object store, not a directory.
pub struct AuditStore {
    /// `s3://BUCKET/PREFIX`, as given.
    pub url: String,
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the bucket.
    pub prefix: object_store::path::Path,
}

/// Whether an audit location names an object store.
pub fn is_store(location: &str) -> bool {
    location.starts_with("s3://")
}

/// Opens `url`, with `options` (object_store S3 keys) over the environment.
pub fn open(url: &str, options: &BTreeMap<String, String>) -> anyhow::Result<AuditStore> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("`{url}` is not `s3://BUCKET[/PREFIX]`"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "`{url}` names no bucket");
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in options {
        let key: AmazonS3ConfigKey = key
            .parse()
            .with_context(|| format!("`{key}` is not an S3 store option"))?;
        builder = builder.with_config(key, value);
    }
    let store = builder
        .build()
        .with_context(|| format!("cannot open the object store `{url}`"))?;
    Ok(AuditStore {
        url: url.trim_end_matches('/').to_owned(),
        store: Arc::new(store),
        prefix: object_store::path::Path::from(prefix.trim_end_matches('/')),
    })
}

/// Opens the audit at `location`: a directory, or an object store URL (options
/// from the environment).
pub async fn audit(location: &std::path::Path) -> anyhow::Result<gatehouse_analytics::Audit> {
    let text = location.to_string_lossy();
    if is_store(&text) {
        let store = open(&text, &BTreeMap::new())?;
        Ok(gatehouse_analytics::Audit::open_store(&store.url, store.store).await?)
    } else {
        Ok(gatehouse_analytics::Audit::open(location).await?)
    }
}
