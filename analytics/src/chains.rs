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
        let since = self
            .since
            .as_deref()
            .map(|s| format!("AND time >= TIMESTAMP '{}'", s.replace('\'', "''")))
            .unwrap_or_default();
        let day_filter = self
            .since
            .as_deref()
            .and_then(|s| s.get(..10))
            .map(|d| format!("AND day >= '{}'", d.replace('\'', "''")))
            .unwrap_or_default();
        let full = format!(
            "WITH recon AS (\n\
               SELECT identity, time AS t1, request_event_id AS recon_event, session_id AS s1, \
                      captured_values, coalesce(result_sample, '') AS sample\n\
               FROM events\n\
               WHERE event_type = 'result_observed' AND protocol = 'postgres' {since} {day_filter}\n\
                 AND (cardinality(captured_values) > 0 OR result_sample IS NOT NULL)\n\
             ), hop AS (\n\
               SELECT identity, time AS t2, event_id AS hop_event, ssh_host AS host, session_id AS s2\n\
               FROM events\n\
               WHERE event_type = 'request_observed' AND protocol = 'ssh' AND action = 'session_open' {since} {day_filter}\n\
             ), pod AS (\n\
               SELECT identity, time AS t3, event_id AS pod_event, session_id AS s3\n\
               FROM events\n\
               WHERE event_type = 'request_observed' AND protocol = 'kubernetes' {since} {day_filter}\n\
                 AND ((action = 'create' AND k8s_resource = 'pods') OR k8s_subresource IN ('exec', 'attach'))\n\
             ), recon_hop AS (\n\
               SELECT DISTINCT r.identity, h.host, r.t1, h.t2, r.recon_event, h.hop_event, r.s1, h.s2\n\
               FROM recon r JOIN hop h ON h.identity = r.identity\n\
                 AND h.t2 > r.t1 AND h.t2 <= r.t1 + INTERVAL '{secs} seconds'\n\
                 AND (array_has(r.captured_values, h.host) OR strpos(r.sample, h.host) > 0)\n\
             ), full_chain AS (\n\
               SELECT 'pg->ssh->k8s' AS kind, rh.identity, rh.host, rh.t1 AS started, p.t3 AS ended,\n\
                      rh.recon_event, rh.hop_event, p.pod_event,\n\
                      concat_ws(',', rh.s1, rh.s2, p.s3) AS sessions\n\
               FROM recon_hop rh JOIN pod p ON p.identity = rh.identity\n\
                 AND p.t3 > rh.t2 AND p.t3 <= rh.t1 + INTERVAL '{secs} seconds'\n\
             )\n"
        );
        let partial = if self.partial {
            format!(
                "UNION ALL\n\
                 SELECT 'pg->ssh' AS kind, identity, host, t1 AS started, t2 AS ended, recon_event, hop_event, \
                        CAST(NULL AS VARCHAR) AS pod_event, concat_ws(',', s1, s2) AS sessions\n\
                 FROM recon_hop rh WHERE NOT EXISTS (SELECT 1 FROM full_chain f WHERE f.hop_event = rh.hop_event)\n\
                 UNION ALL\n\
                 SELECT 'ssh->k8s' AS kind, h.identity, h.host, h.t2 AS started, p.t3 AS ended, \
                        CAST(NULL AS VARCHAR) AS recon_event, h.hop_event, p.pod_event, concat_ws(',', h.s2, p.s3) AS sessions\n\
                 FROM hop h JOIN pod p ON p.identity = h.identity AND p.t3 > h.t2 AND p.t3 <= h.t2 + INTERVAL '{secs} seconds'\n\
                 WHERE NOT EXISTS (SELECT 1 FROM full_chain f WHERE f.pod_event = p.pod_event)\n"
            )
        } else {
            String::new()
        };
        format!(
            "{full}SELECT * FROM (\nSELECT * FROM full_chain\n{partial}) ORDER BY started, identity, kind, hop_event, pod_event"
        )
    }
}
