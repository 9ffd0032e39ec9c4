//! The built-in hunt: identity-keyed Postgres -> SSH -> Kubernetes chains.
//!
//! A chain is, for one identity within a window:
//! 1. **recon** — a Postgres result that contained host names (values captured by a
//!    sequence rule, or whole tokens of the recorded result sample), then
//! 2. **hop** — an SSH login to one of those hosts, then
//! 3. **pod** — a Kubernetes pod creation (or `exec`) request, or a Kubernetes
//!    client run over SSH (`ssh_pivot` has `kubernetes`).
//!
//! Hosts compare as hosts, with the keys stored on the events
//! (`gatehouse_events::host`): the login's `ssh_hosts` against the result's captured
//! values, their keys and the whole host-like tokens of its recorded sample.
//!
//! The two-step variants (recon -> hop, hop -> pod) are reported too. Matching uses
//! what was *recorded*, not what a rule flagged at the time, so chains no rule existed
//! for are found after the fact. The SQL is plain DataFusion SQL over the `events`
//! table; `docs/audit.md` has the same query for stock `datafusion-cli`.

use std::time::Duration;

/// The keys of a login's host (`gatehouse_events::host::target_keys`), stored on
/// the event; for events written before keys were, the host in lower case and, for
/// a qualified name, its short-name marker (`db-1.*`).
pub(crate) const HOP_KEYS: &str = "CASE WHEN cardinality(ssh_hosts) > 0 THEN ssh_hosts \
     ELSE [lower(ssh_host), regexp_replace(lower(ssh_host), '^([^.]*[a-z_-][^.]*)[.].*$', '\\1.*')] END";

/// The host keys a Postgres result offers (columns prefixed with `r`, e.g. `r.`):
/// the captured values and their keys, and the host-like tokens of the recorded
/// sample: maximal runs of letters, digits, `.`, `-`, `_` and `:`, lower-cased, with
/// `.` and `:` trimmed from both ends, each with its first label and its short-name
/// marker. A name in the sample therefore matches only as a whole token: `db` is not
/// in `db-1.internal`. It is evaluated in the join condition, so only for the results
/// that share an identity and a time slot with a login.
pub(crate) fn recon_keys(r: &str) -> String {
    let tokens = format!(
        "trim(regexp_replace(regexp_replace(\
         regexp_replace(lower(coalesce({r}result_sample, '')), '[^a-z0-9._:-]+', ' ', 'g'), \
         '[.:]+( |$)', ' ', 'g'), '(^| )[.:]+', ' ', 'g'))"
    );
    format!(
        "array_concat(\
         {r}captured_values, coalesce({r}captured_hosts, {r}captured_values), \
         string_to_array({tokens}, ' '), \
         string_to_array(regexp_replace({tokens}, '([^ .]+)[.][^ ]*', '\\1', 'g'), ' '), \
         string_to_array(regexp_replace({tokens}, '([^ ]+)', '\\1.*', 'g'), ' '))"
    )
}

/// Chain search parameters.
#[derive(Debug, Clone)]
pub struct ChainQuery {
    /// Longest time from the first to the last step.
    pub within: Duration,
    /// Only chains starting at or after this time (RFC 3339), if set.
    pub since: Option<String>,
    /// Include two-step chains.
    pub partial: bool,
}

impl Default for ChainQuery {
    fn default() -> Self {
        Self {
            within: Duration::from_secs(30 * 60),
            since: None,
            partial: true,
        }
    }
}

impl ChainQuery {
    /// The SQL. Columns: `kind` (`pg->ssh->k8s`, `pg->ssh`, `ssh->k8s`), `identity`,
    /// `host`, `started`, `ended`, `recon_event`, `hop_event`, `pod_event`, `sessions`.
    pub fn sql(&self) -> String {
        let secs = self.window_secs();
        let (hop, pod, recon) = (
            self.filter(Step::Hop),
            self.filter(Step::Pod),
            self.filter(Step::Recon),
        );
        // Shape, chosen so that no engine has to materialise anything (DataFusion
        // does not materialise CTEs, so each is referenced once) and no join needs a
        // nested loop:
        // - `slot` numbers window-sized time slots. A later step within the window
        //   of an earlier one lies in the same slot or the next, so every join is an
        //   equality join on (identity, slot): pods and recon results are listed once
        //   for each slot they may pair with (`unnest`), and the window and host
        //   conditions only run on those few candidates.
        // - One pass over the SSH logins joins the pods after each and the Postgres
        //   results before it; window functions then mark the logins, pods and
        //   (result, login) pairs that are part of a full chain, and each row yields
        //   the chain kinds it stands for.
        // - `proto` is the directory partition: each CTE reads one protocol's files.
        let slot = format!("CAST(floor(extract(epoch FROM time) / {secs}) AS BIGINT)");
        let (hop_keys, recon_keys) = (HOP_KEYS, recon_keys("r."));
        let kinds = if self.partial {
            "CASE WHEN is_full = 1 THEN 'pg->ssh->k8s' END,\n\
             CASE WHEN recon_event IS NOT NULL AND pair_full = 0 AND hop_in_full = 0 THEN 'pg->ssh' END,\n\
             CASE WHEN pod_event IS NOT NULL AND pod_in_full = 0 THEN 'ssh->k8s' END"
        } else {
            "CASE WHEN is_full = 1 THEN 'pg->ssh->k8s' END"
        };
        format!(
            "WITH hop AS (\n\
               SELECT identity, time AS t2, event_id AS hop_event, ssh_host AS host, {hop_keys} AS hosts, session_id AS s2, {slot} AS slot\n\
               FROM events\n\
               WHERE {hop}\n\
             ), pod AS (\n\
               SELECT identity, time AS t3, event_id AS pod_event, session_id AS s3, unnest([{slot}, {slot} - 1]) AS slot\n\
               FROM events\n\
               WHERE {pod}\n\
             ), recon AS (\n\
               SELECT identity, time AS t1, request_event_id AS recon_event, session_id AS s1,\n\
                      captured_values, captured_hosts, result_sample, unnest([{slot}, {slot} + 1]) AS slot\n\
               FROM events\n\
               WHERE {recon}\n\
             ), steps AS (\n\
               SELECT h.identity, h.host, h.t2, h.hop_event, h.s2, p.t3, p.pod_event, p.s3, r.t1, r.recon_event, r.s1,\n\
                      CASE WHEN r.recon_event IS NOT NULL AND p.pod_event IS NOT NULL\n\
                                AND p.t3 <= r.t1 + INTERVAL '{secs} seconds' THEN 1 ELSE 0 END AS is_full\n\
               FROM hop h\n\
               LEFT JOIN pod p ON p.identity = h.identity AND p.slot = h.slot\n\
                 AND p.t3 > h.t2 AND p.t3 <= h.t2 + INTERVAL '{secs} seconds'\n\
               LEFT JOIN recon r ON r.identity = h.identity AND r.slot = h.slot\n\
                 AND h.t2 > r.t1 AND h.t2 <= r.t1 + INTERVAL '{secs} seconds'\n\
                 AND array_has_any({recon_keys}, h.hosts)\n\
               WHERE p.pod_event IS NOT NULL OR r.recon_event IS NOT NULL\n\
             ), flagged AS (\n\
               SELECT *,\n\
                      max(is_full) OVER (PARTITION BY hop_event) AS hop_in_full,\n\
                      max(is_full) OVER (PARTITION BY pod_event) AS pod_in_full,\n\
                      max(is_full) OVER (PARTITION BY recon_event, hop_event) AS pair_full\n\
               FROM steps\n\
             ), kinds AS (\n\
               SELECT *, unnest([\n\
               {kinds}]) AS kind\n\
               FROM flagged\n\
             )\n\
             SELECT DISTINCT kind, identity, host,\n\
                    CASE WHEN kind = 'ssh->k8s' THEN t2 ELSE t1 END AS started,\n\
                    CASE WHEN kind = 'pg->ssh' THEN t2 ELSE t3 END AS ended,\n\
                    CASE WHEN kind = 'ssh->k8s' THEN CAST(NULL AS VARCHAR) ELSE recon_event END AS recon_event,\n\
                    hop_event,\n\
                    CASE WHEN kind = 'pg->ssh' THEN CAST(NULL AS VARCHAR) ELSE pod_event END AS pod_event,\n\
                    CASE WHEN kind = 'pg->ssh->k8s' THEN concat_ws(',', s1, s2, s3)\n\
                         WHEN kind = 'pg->ssh' THEN concat_ws(',', s1, s2)\n\
                         ELSE concat_ws(',', s2, s3) END AS sessions\n\
             FROM kinds\n\
             WHERE kind IS NOT NULL\n\
             ORDER BY started, identity, kind, hop_event, pod_event"
        )
    }

    /// The window in whole seconds (at least one).
    pub(crate) fn window_secs(&self) -> u64 {
        self.within.as_secs().max(1)
    }

    /// The `WHERE` condition selecting one kind of step (with `since` and its `day`
    /// pruning).
    pub(crate) fn filter(&self, step: Step) -> String {
        let kind = match step {
            Step::Hop => {
                "proto = 'ssh' AND event_type = 'request_observed' AND action = 'session_open'"
            }
            Step::Pod => {
                "((proto = 'kubernetes' AND event_type = 'request_observed' \
                 AND ((action = 'create' AND k8s_resource = 'pods') OR k8s_subresource IN ('exec', 'attach'))) \
                 OR (proto = 'ssh' AND event_type = 'request_observed' AND array_has(ssh_pivot, 'kubernetes')))"
            }
            Step::Recon => "proto = 'postgres' AND event_type = 'result_observed'",
        };
        format!("{kind}{}", self.since_filter())
    }

    /// ` AND time >= ... AND day >= ...` for `since`, or nothing.
    pub(crate) fn since_filter(&self) -> String {
        let Some(since) = self.since.as_deref() else {
            return String::new();
        };
        let mut f = format!(" AND time >= TIMESTAMP '{}'", since.replace('\'', "''"));
        if let Some(day) = since.get(..10) {
            f.push_str(&format!(" AND day >= '{}'", day.replace('\'', "''")));
        }
        f
    }

    /// The columns the sweep reads for one kind of step.
    pub(crate) fn columns(step: Step) -> &'static [&'static str] {
        match step {
            Step::Hop => &[
                "identity",
                "time",
                "event_id",
                "ssh_host",
                "session_id",
                "ssh_hosts",
            ],
            Step::Pod => &["identity", "time", "event_id", "session_id"],
            Step::Recon => &[
                "identity",
                "time",
                "request_event_id",
                "session_id",
                "captured_values",
                "result_sample",
                "captured_hosts",
            ],
        }
    }
}

/// The three kinds of step.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// An SSH login.
    Hop,
    /// A pod creation or exec.
    Pod,
    /// A Postgres result.
    Recon,
}
