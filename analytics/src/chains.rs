//! The built-in hunt: identity-keyed Postgres -> SSH -> Kubernetes chains.
//!
//! A chain is, for one identity within a window:
//! 1. **recon** — a Postgres result that contained host names (values captured by a
//!    sequence rule, or simply present in the recorded result sample), then
//! 2. **hop** — an SSH login to one of those hosts, then
//! 3. **pod** — a Kubernetes pod creation (or `exec`) request.
//!
//! The two-step variants (recon -> hop, hop -> pod) are reported too. Matching uses
//! what was *recorded*, not what a rule flagged at the time, so chains no rule existed
//! for are found after the fact. The SQL is plain DataFusion SQL over the `events`
//! table; `docs/audit.md` has the same query for stock `datafusion-cli`.

use std::time::Duration;

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
        let secs = self.within.as_secs().max(1);
        // Filters on the start time (and, for pruning, the `day` partition), for a
        // table referred to with `prefix` (`""` or `"r."`).
        let since = |prefix: &str| {
            self.since
                .as_deref()
                .map(|s| format!("AND {prefix}time >= TIMESTAMP '{}'", s.replace('\'', "''")))
                .unwrap_or_default()
        };
        let day_filter = |prefix: &str| {
            self.since
                .as_deref()
                .and_then(|s| s.get(..10))
                .map(|d| format!("AND {prefix}day >= '{}'", d.replace('\'', "''")))
                .unwrap_or_default()
        };
        let (since_r, day_filter_r) = (since("r."), day_filter("r."));
        let (since, day_filter) = (since(""), day_filter(""));
        // Every expensive part is referenced once (DataFusion does not materialise
        // CTEs): recon rows are first narrowed to the host names SSH logins used, the
        // chain candidates of all three kinds come out of one pass, and window
        // functions drop the partial chains a full chain covers.
        let partial_filter = if self.partial {
            "OR (kind = 'pg->ssh' AND hop_in_full = 0) \
             OR (kind = 'ssh->k8s' AND pod_in_full = 0)"
        } else {
            ""
        };
        format!(
            "WITH hop AS (\n\
               SELECT identity, time AS t2, event_id AS hop_event, ssh_host AS host, session_id AS s2\n\
               FROM events\n\
               WHERE event_type = 'request_observed' AND protocol = 'ssh' AND action = 'session_open' {since} {day_filter}\n\
             ), pod AS (\n\
               SELECT identity, time AS t3, event_id AS pod_event, session_id AS s3\n\
               FROM events\n\
               WHERE event_type = 'request_observed' AND protocol = 'kubernetes' {since} {day_filter}\n\
                 AND ((action = 'create' AND k8s_resource = 'pods') OR k8s_subresource IN ('exec', 'attach'))\n\
             ), hop_hosts AS (\n\
               SELECT DISTINCT host FROM hop\n\
             ), recon AS (\n\
               SELECT r.identity, r.time AS t1, r.request_event_id AS recon_event, r.session_id AS s1, hh.host\n\
               FROM events r JOIN hop_hosts hh\n\
                 ON (array_has(r.captured_values, hh.host) OR strpos(coalesce(r.result_sample, ''), hh.host) > 0)\n\
               WHERE r.event_type = 'result_observed' AND r.protocol = 'postgres' {since_r} {day_filter_r}\n\
                 AND (cardinality(r.captured_values) > 0 OR r.result_sample IS NOT NULL)\n\
             ), recon_hop AS (\n\
               SELECT DISTINCT r.identity, h.host, r.t1, h.t2, r.recon_event, h.hop_event, r.s1, h.s2\n\
               FROM recon r JOIN hop h ON h.identity = r.identity AND h.host = r.host\n\
                 AND h.t2 > r.t1 AND h.t2 <= r.t1 + INTERVAL '{secs} seconds'\n\
             ), candidates AS (\n\
               SELECT CASE WHEN p.pod_event IS NULL THEN 'pg->ssh' ELSE 'pg->ssh->k8s' END AS kind,\n\
                      rh.identity, rh.host, rh.t1 AS started, coalesce(p.t3, rh.t2) AS ended,\n\
                      rh.recon_event, rh.hop_event, p.pod_event,\n\
                      CASE WHEN p.pod_event IS NULL THEN concat_ws(',', rh.s1, rh.s2)\n\
                           ELSE concat_ws(',', rh.s1, rh.s2, p.s3) END AS sessions\n\
               FROM recon_hop rh LEFT JOIN pod p ON p.identity = rh.identity\n\
                 AND p.t3 > rh.t2 AND p.t3 <= rh.t1 + INTERVAL '{secs} seconds'\n\
               UNION ALL\n\
               SELECT 'ssh->k8s' AS kind, h.identity, h.host, h.t2 AS started, p.t3 AS ended,\n\
                      CAST(NULL AS VARCHAR) AS recon_event, h.hop_event, p.pod_event,\n\
                      concat_ws(',', h.s2, p.s3) AS sessions\n\
               FROM hop h JOIN pod p ON p.identity = h.identity\n\
                 AND p.t3 > h.t2 AND p.t3 <= h.t2 + INTERVAL '{secs} seconds'\n\
             ), ranked AS (\n\
               SELECT *,\n\
                      max(CASE WHEN kind = 'pg->ssh->k8s' THEN 1 ELSE 0 END) OVER (PARTITION BY hop_event) AS hop_in_full,\n\
                      max(CASE WHEN kind = 'pg->ssh->k8s' THEN 1 ELSE 0 END) OVER (PARTITION BY pod_event) AS pod_in_full\n\
               FROM candidates\n\
             )\n\
             SELECT kind, identity, host, started, ended, recon_event, hop_event, pod_event, sessions\n\
             FROM ranked\n\
             WHERE kind = 'pg->ssh->k8s' {partial_filter}\n\
             ORDER BY started, identity, kind, hop_event, pod_event"
        )
    }
}
