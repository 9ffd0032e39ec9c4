//! The chain hunt's own plan: DataFusion reads the three kinds of step (narrow
//! projections; filters, `day`/`proto` pruning and identity lists pushed into the
//! Parquet scans), then a sweep over each identity's steps in time order pairs them.
//!
//! It returns exactly the rows of [`ChainQuery::sql`], in the same order
//! (`tests/chains.rs` compares the two on dense histories). The SQL needs joins
//! whose candidates DataFusion has to materialise, hash and repartition; here the
//! pairing is a two-pointer walk over a few sorted vectors per identity, and the
//! time goes to reading the files.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionContext, col, lit};

use crate::chains::{ChainQuery, Step};
use crate::{Audit, AuditError};

const FULL: &str = "pg->ssh->k8s";
const RECON_HOP: &str = "pg->ssh";
const HOP_POD: &str = "ssh->k8s";

/// An SSH login.
struct Hop<'a> {
    t: i64,
    id: &'a str,
    host: Option<&'a str>,
    /// `ssh_hosts` and the row.
    stored: (&'a GenericListArray<i32>, usize),
    /// [`crate::chains::HOP_KEYS`], made when first needed.
    keys: std::cell::OnceCell<Vec<String>>,
    session: Option<&'a str>,
}

impl Hop<'_> {
    fn keys(&self) -> &[String] {
        self.keys.get_or_init(|| {
            let (list, row) = self.stored;
            hop_keys(
                self.host,
                list_items(list, row).map(str::to_owned).collect(),
            )
        })
    }
}

/// A pod creation or exec.
struct Pod<'a> {
    t: i64,
    id: &'a str,
    session: Option<&'a str>,
}

/// A Postgres result.
struct Recon<'a> {
    t: i64,
    id: &'a str,
    session: Option<&'a str>,
    captured: &'a GenericListArray<i32>,
    hosts: &'a GenericListArray<i32>,
    row: usize,
    sample: Option<&'a str>,
    /// [`crate::chains::recon_keys`], sorted; made when first needed (only results
    /// near a login of their identity are ever tested).
    keys: std::cell::OnceCell<Vec<String>>,
}

impl Recon<'_> {
    /// `array_has_any(recon_keys, h.hosts)`.
    fn names(&self, hop: &[String]) -> bool {
        let keys = self.keys.get_or_init(|| {
            recon_keys(
                list_items(self.captured, self.row),
                list_items(self.hosts, self.row),
                self.sample,
            )
        });
        hop.iter().any(|k| keys.binary_search(k).is_ok())
    }
}

/// The items of row `row` of a list column.
fn list_items(list: &GenericListArray<i32>, row: usize) -> impl Iterator<Item = &str> {
    let values = list.values().as_string::<i32>();
    let offsets = list.value_offsets();
    let range = match (list.is_valid(row), offsets.get(row), offsets.get(row + 1)) {
        (true, Some(&a), Some(&b)) => {
            usize::try_from(a).unwrap_or(0)..usize::try_from(b).unwrap_or(0)
        }
        _ => 0..0,
    };
    range
        .filter(move |&j| values.is_valid(j))
        .map(move |j| values.value(j))
}

/// [`crate::chains::HOP_KEYS`] for one login.
fn hop_keys(host: Option<&str>, stored: Vec<String>) -> Vec<String> {
    if !stored.is_empty() {
        return stored;
    }
    let Some(host) = host else {
        return Vec::new();
    };
    let lower = host.to_lowercase();
    // `regexp_replace(lower, '^([^.]*[a-z_-][^.]*)[.].*$', '\1.*')`
    let second = match lower.split_once('.') {
        Some((label, _))
            if label
                .bytes()
                .any(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-') =>
        {
            format!("{label}.*")
        }
        _ => lower.clone(),
    };
    vec![lower, second]
}

/// [`crate::chains::recon_keys`] for one result, sorted and deduplicated.
fn recon_keys<'a>(
    captured: impl Iterator<Item = &'a str>,
    hosts: impl Iterator<Item = &'a str>,
    sample: Option<&str>,
) -> Vec<String> {
    let mut keys: Vec<String> = captured.chain(hosts).map(str::to_owned).collect();
    // The sample's tokens: separators to spaces, `.`/`:` runs trimmed at token ends.
    let lower = sample.unwrap_or("").to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let tokens: Vec<&str> = cleaned
        .split(' ')
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| !t.is_empty())
        .collect();
    for t in tokens {
        if let Some((label, _)) = t.split_once('.') {
            keys.push(label.to_owned());
        }
        keys.push(format!("{t}.*"));
        keys.push(t.to_owned());
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The steps of one identity.
#[derive(Default)]
struct Steps<'a> {
    hops: Vec<Hop<'a>>,
    pods: Vec<Pod<'a>>,
    recons: Vec<Recon<'a>>,
}

/// One output row.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Row<'a> {
    // The fields in `ORDER BY started, identity, kind, hop_event, pod_event` order
    // (the pod's NULL last), then the rest, so sorting orders like the SQL and
    // equal rows end up adjacent for DISTINCT.
    started: i64,
    identity: &'a str,
    kind: &'static str,
    hop: &'a str,
    pod_missing: bool,
    pod: Option<&'a str>,
    host: Option<&'a str>,
    ended: i64,
    recon: Option<&'a str>,
    sessions: String,
}

impl<'a> Row<'a> {
    /// The row for a chain of up to three steps (at least two), with the SQL's
    /// `started` (the first step), `ended` (the last) and `sessions`
    /// (`concat_ws(',', ...)` of the steps' sessions, NULLs skipped).
    fn new(
        kind: &'static str,
        identity: &'a str,
        recon: Option<&Recon<'a>>,
        hop: &Hop<'a>,
        pod: Option<&Pod<'a>>,
    ) -> Self {
        let started = recon.map_or(hop.t, |r| r.t);
        let ended = pod.map_or(hop.t, |p| p.t);
        let sessions = [
            recon.and_then(|r| r.session),
            hop.session,
            pod.and_then(|p| p.session),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(",");
        Self {
            started,
            identity,
            kind,
            hop: hop.id,
            pod_missing: pod.is_none(),
            pod: pod.map(|p| p.id),
            host: hop.host,
            ended,
            recon: recon.map(|r| r.id),
            sessions,
        }
    }
}

/// Runs the hunt.
///
/// Reads are cut down by identity (a semi-join reduction): only identities with a
/// pod or a Postgres result can have a login in a chain, and only identities with
/// such a login can have a pod or a result in one. So the plan is
/// 1. the distinct identities with Kubernetes events and with Postgres events (two
///    narrow scans, at once; supersets of those with pods and results, cheaper to
///    read than testing each row's event type),
/// 2. the logins of those identities,
/// 3. the pods and the results of the identities with logins (at once).
///
/// Steps 2 and 3 push the identity list into the Parquet scans, ahead of the other
/// tests, with filter pushdown: the other columns are decoded only for the rows that
/// pass, and pages where none do are skipped. When identities keep to one protocol
/// each, most rows are never decoded beyond their identity; when every identity uses
/// all three, each kind is read once in full, plus the two identity scans.
pub(crate) async fn run(audit: &Audit, query: &ChainQuery) -> Result<Vec<RecordBatch>, AuditError> {
    let ctx = &pushdown_context(audit).await?;
    let identities = |proto: &'static str| {
        let sql = format!(
            "SELECT DISTINCT identity FROM events WHERE proto = '{proto}'{}",
            query.since_filter()
        );
        async move { ctx.sql(&sql).await?.collect().await }
    };
    let pivots = async {
        let sql = format!(
            "SELECT DISTINCT identity FROM events WHERE proto = 'ssh' AND array_has(ssh_pivot, 'kubernetes'){}",
            query.since_filter()
        );
        ctx.sql(&sql).await?.collect().await
    };
    let (in_kubernetes, in_postgres, with_pivots) =
        tokio::try_join!(identities("kubernetes"), identities("postgres"), pivots)?;
    let mut wanted = identity_set(&normalized(in_kubernetes)?)?;
    wanted.extend(identity_set(&normalized(in_postgres)?)?);
    wanted.extend(identity_set(&normalized(with_pivots)?)?);
    let hops = normalized(scan(ctx, query, Step::Hop, &wanted).await?)?;
    let with_hops = identity_set(&hops)?;
    let (pods, recons) = tokio::try_join!(
        scan(ctx, query, Step::Pod, &with_hops),
        scan(ctx, query, Step::Recon, &with_hops)
    )?;
    let (pods, recons) = (normalized(pods)?, normalized(recons)?);
    let window = i64::try_from(query.window_secs())
        .unwrap_or(i64::MAX / 2_000_000)
        .saturating_mul(1_000_000);

    // Group by identity (the scans above kept only identities with logins, and the
    // logins of identities with Kubernetes or Postgres events).
    let mut by_identity: HashMap<&str, Steps<'_>> = HashMap::new();
    for b in &hops {
        let (who, t, id, host, session) = (
            strings(b, 0)?,
            times(b, 1)?,
            strings(b, 2)?,
            strings(b, 3)?,
            strings(b, 4)?,
        );
        let stored = lists(b, 5, "ssh_hosts")?;
        for i in 0..b.num_rows() {
            if let (Some(who), Some(t), Some(id)) = (value(who, i), time(t, i), value(id, i)) {
                by_identity.entry(who).or_default().hops.push(Hop {
                    t,
                    id,
                    host: value(host, i),
                    stored: (stored, i),
                    keys: std::cell::OnceCell::new(),
                    session: value(session, i),
                });
            }
        }
    }
    for b in &pods {
        let (who, t, id, session) = (strings(b, 0)?, times(b, 1)?, strings(b, 2)?, strings(b, 3)?);
        for i in 0..b.num_rows() {
            if let (Some(who), Some(t), Some(id)) = (value(who, i), time(t, i), value(id, i))
                && let Some(steps) = by_identity.get_mut(who)
            {
                steps.pods.push(Pod {
                    t,
                    id,
                    session: value(session, i),
                });
            }
        }
    }
    for b in &recons {
        let (who, t, id, session, sample) = (
            strings(b, 0)?,
            times(b, 1)?,
            strings(b, 2)?,
            strings(b, 3)?,
            strings(b, 5)?,
        );
        let captured = lists(b, 4, "captured_values")?;
        let hosts = lists(b, 6, "captured_hosts")?;
        for i in 0..b.num_rows() {
            if let (Some(who), Some(t), Some(id)) = (value(who, i), time(t, i), value(id, i))
                && let Some(steps) = by_identity.get_mut(who)
            {
                steps.recons.push(Recon {
                    t,
                    id,
                    session: value(session, i),
                    captured,
                    hosts,
                    row: i,
                    sample: value(sample, i),
                    keys: std::cell::OnceCell::new(),
                });
            }
        }
    }

    let mut rows = Vec::new();
    for (who, mut steps) in by_identity {
        if steps.pods.is_empty() && steps.recons.is_empty() {
            continue;
        }
        steps.hops.sort_by_key(|h| h.t);
        steps.pods.sort_by_key(|p| p.t);
        steps.recons.sort_by_key(|r| r.t);
        pair(who, &steps, window, query.partial, &mut rows);
    }
    rows.sort();
    rows.dedup();
    Ok(vec![to_batch(&rows)?])
}

/// Pairs one identity's steps (each list sorted by time) and appends the chains.
fn pair<'a>(who: &'a str, steps: &Steps<'a>, window: i64, partial: bool, rows: &mut Vec<Row<'a>>) {
    let Steps { hops, pods, recons } = steps;
    // (hop, pod): the pod within the window after the login.
    // (recon, hop): the login within the window after a result naming its host.
    let mut hop_pods: Vec<(usize, usize)> = Vec::new();
    let mut recon_hops: Vec<(usize, usize)> = Vec::new();
    for (h, hop) in hops.iter().enumerate() {
        let first = pods.partition_point(|p| p.t <= hop.t);
        for (p, pod) in pods.iter().enumerate().skip(first) {
            if pod.t > hop.t.saturating_add(window) {
                break;
            }
            hop_pods.push((h, p));
        }
        let first = recons.partition_point(|r| r.t < hop.t.saturating_sub(window));
        if recons.get(first).is_some_and(|r| r.t < hop.t) && !hop.keys().is_empty() {
            for (r, recon) in recons.iter().enumerate().skip(first) {
                if recon.t >= hop.t {
                    break;
                }
                if recon.names(hop.keys()) {
                    recon_hops.push((r, h));
                }
            }
        }
    }
    // Full chains: a (recon, hop) pair and a pod after the hop, within the window of
    // the recon.
    let mut hop_in_full = vec![false; hops.len()];
    let mut pod_in_full = vec![false; pods.len()];
    let mut pods_of_hop: Vec<Vec<usize>> = vec![Vec::new(); hops.len()];
    for &(h, p) in &hop_pods {
        if let Some(v) = pods_of_hop.get_mut(h) {
            v.push(p);
        }
    }
    for &(r, h) in &recon_hops {
        let (Some(recon), Some(hop)) = (recons.get(r), hops.get(h)) else {
            continue;
        };
        for &p in pods_of_hop.get(h).map(Vec::as_slice).unwrap_or_default() {
            let Some(pod) = pods.get(p) else { continue };
            if pod.t > recon.t.saturating_add(window) {
                continue;
            }
            if let Some(f) = hop_in_full.get_mut(h) {
                *f = true;
            }
            if let Some(f) = pod_in_full.get_mut(p) {
                *f = true;
            }
            rows.push(Row::new(FULL, who, Some(recon), hop, Some(pod)));
        }
    }
    if !partial {
        return;
    }
    for &(r, h) in &recon_hops {
        let (Some(recon), Some(hop)) = (recons.get(r), hops.get(h)) else {
            continue;
        };
        if hop_in_full.get(h).copied().unwrap_or(true) {
            continue;
        }
        rows.push(Row::new(RECON_HOP, who, Some(recon), hop, None));
    }
    for &(h, p) in &hop_pods {
        let (Some(hop), Some(pod)) = (hops.get(h), pods.get(p)) else {
            continue;
        };
        if pod_in_full.get(p).copied().unwrap_or(true) {
            continue;
        }
        rows.push(Row::new(HOP_POD, who, None, hop, Some(pod)));
    }
}

/// A session over the same `events` table with Parquet filter pushdown on: the
/// scans below keep few rows, and pushdown decodes the other columns only for
/// those.
async fn pushdown_context(audit: &Audit) -> Result<SessionContext, AuditError> {
    let mut config = audit.ctx.copied_config();
    config.options_mut().execution.parquet.pushdown_filters = true;
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("events", audit.ctx.table_provider("events").await?)?;
    Ok(ctx)
}

/// One kind of step, of the given identities only (nothing when there are none).
///
/// The identity test comes first in the pushed-down filter: it usually keeps few
/// rows, and the event type and action are then decoded only for those. The other
/// way round, the identity column is decoded for every row of the right type, a
/// selection so scattered that decoding it costs more (25 % more CPU on the
/// Postgres files of the benchmark).
async fn scan(
    ctx: &SessionContext,
    query: &ChainQuery,
    step: Step,
    identities: &BTreeSet<String>,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let events = ctx.table("events").await?;
    let list = identities.iter().map(|i| lit(i.as_str())).collect();
    let predicate = col("identity")
        .in_list(list, false)
        .and(events.parse_sql_expr(&query.filter(step))?);
    events
        .filter(predicate)?
        .select_columns(ChainQuery::columns(step))?
        .collect()
        .await
}

/// The distinct non-NULL values of the first column (`identity`).
fn identity_set(batches: &[RecordBatch]) -> Result<BTreeSet<String>, AuditError> {
    let mut out = BTreeSet::new();
    for b in batches {
        let who = strings(b, 0)?;
        out.extend(who.iter().flatten().map(str::to_owned));
    }
    Ok(out)
}

/// Column `i` of `b` as a list of strings.
fn lists<'a>(
    b: &'a RecordBatch,
    i: usize,
    name: &str,
) -> Result<&'a GenericListArray<i32>, AuditError> {
    b.column(i)
        .as_list_opt::<i32>()
        .ok_or_else(|| internal(&format!("{name} is not a list")))
}

fn internal(msg: &str) -> AuditError {
    AuditError::DataFusion(DataFusionError::Internal(format!("chain sweep: {msg}")))
}

/// Casts string columns to `Utf8` (DataFusion may hand out views) and lists to lists
/// of `Utf8`, so the sweep reads one layout.
fn normalized(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, AuditError> {
    batches
        .into_iter()
        .map(|b| {
            let mut changed = false;
            let columns = b
                .columns()
                .iter()
                .map(|c| {
                    let to = match c.data_type() {
                        DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..) => {
                            DataType::Utf8
                        }
                        DataType::List(f) if f.data_type() != &DataType::Utf8 => {
                            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                        }
                        DataType::LargeList(_) | DataType::ListView(_) => {
                            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                        }
                        _ => return Ok(Arc::clone(c)),
                    };
                    changed = true;
                    datafusion::arrow::compute::cast(c, &to)
                })
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(DataFusionError::from)?;
            if !changed {
                return Ok(b);
            }
            let fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                .collect();
            Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(DataFusionError::from)?)
        })
        .collect()
}

fn strings(b: &RecordBatch, i: usize) -> Result<&StringArray, AuditError> {
    b.columns()
        .get(i)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| internal("expected a string column"))
}

fn times(b: &RecordBatch, i: usize) -> Result<&TimestampMicrosecondArray, AuditError> {
    b.columns()
        .get(i)
        .and_then(|c| {
            c.as_primitive_opt::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
        })
        .ok_or_else(|| internal("expected a microsecond timestamp column"))
}

fn value(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn time(a: &TimestampMicrosecondArray, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// The rows as one batch with the SQL's columns.
fn to_batch(rows: &[Row<'_>]) -> Result<RecordBatch, AuditError> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("identity", DataType::Utf8, false),
        Field::new("host", DataType::Utf8, true),
        Field::new("started", ts.clone(), false),
        Field::new("ended", ts, false),
        Field::new("recon_event", DataType::Utf8, true),
        Field::new("hop_event", DataType::Utf8, false),
        Field::new("pod_event", DataType::Utf8, true),
        Field::new("sessions", DataType::Utf8, false),
    ]));
    let text = |f: &dyn Fn(&Row<'_>) -> Option<String>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 24);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let stamp = |f: &dyn Fn(&Row<'_>) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let columns = vec![
        text(&|r| Some(r.kind.to_owned())),
        text(&|r| Some(r.identity.to_owned())),
        text(&|r| r.host.map(str::to_owned)),
        stamp(&|r| r.started),
        stamp(&|r| r.ended),
        text(&|r| r.recon.map(str::to_owned)),
        text(&|r| Some(r.hop.to_owned())),
        text(&|r| r.pod.map(str::to_owned)),
        text(&|r| Some(r.sessions.clone())),
    ];
    Ok(RecordBatch::try_new(schema, columns).map_err(DataFusionError::from)?)
}
