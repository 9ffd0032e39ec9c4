//! The tables and views `audit sql` offers.
//!
//! `events` is the Parquet audit itself (one row per event). The views are plain SQL
//! over it, so the same definitions work in stock `datafusion-cli` (see
//! `docs/audit.md`), and deduplicate on `event_id` (shipping is at least once).

/// `(name, SQL)` of every view, in dependency order.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "events_dedup",
        "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY time) AS _copy FROM events) WHERE _copy = 1",
    ),
    (
        "decisions",
        "SELECT d.time, d.day, d.identity, d.on_behalf_of, d.target, d.protocol, d.session_id, \
                d.request_event_id, d.effect, d.rules, d.reason, d.approval_id, d.default_applied, \
                r.command, r.action, d.event_id \
         FROM events_dedup d LEFT JOIN events_dedup r ON r.event_id = d.request_event_id \
         WHERE d.event_type = 'decision_made'",
    ),
    (
        "results",
        "SELECT time, day, identity, target, protocol, session_id, request_event_id, status, rows, bytes, code, \
                reason AS message, duration_us, masked, captured_values, result_sample, event_id \
         FROM events_dedup WHERE event_type = 'result_observed'",
    ),
    (
        "statements",
        "SELECT q.time, q.day, q.identity, q.on_behalf_of, q.target, q.session_id, q.command AS sql, q.action AS kind, \
                q.pg_statement_index AS statement_index, q.pg_tables_read AS tables_read, q.pg_tables_written AS tables_written, \
                q.pg_functions AS functions, q.pg_dangerous AS dangerous, q.pg_has_where AS has_where, q.pg_phase AS phase, \
                q.pg_parse_error AS parse_error, d.effect, d.rules, d.reason, res.status, res.rows, res.duration_us, \
                res.result_sample, q.event_id \
         FROM events_dedup q \
         LEFT JOIN decisions d ON d.request_event_id = q.event_id \
         LEFT JOIN results res ON res.request_event_id = q.event_id \
         WHERE q.event_type = 'request_observed' AND q.protocol = 'postgres'",
    ),
    (
        "ssh_commands",
        "SELECT q.time, q.day, q.identity, q.on_behalf_of, q.target, q.session_id, q.action AS kind, q.ssh_host AS host, \
                q.command, q.ssh_argv AS argv, q.ssh_program AS program, q.ssh_programs AS programs, \
                q.ssh_forward_host AS forward_host, q.ssh_forward_port AS forward_port, q.ssh_sftp_op AS sftp_op, \
                q.ssh_path AS path, d.effect, d.rules, d.reason, res.code AS exit_status, q.event_id \
         FROM events_dedup q \
         LEFT JOIN decisions d ON d.request_event_id = q.event_id \
         LEFT JOIN results res ON res.request_event_id = q.event_id \
         WHERE q.event_type = 'request_observed' AND q.protocol = 'ssh'",
    ),
    (
        "k8s_requests",
        "SELECT q.time, q.day, q.identity, q.on_behalf_of, q.target, q.session_id, q.action AS verb, q.k8s_method AS method, \
                q.k8s_path AS path, q.k8s_api_group AS api_group, q.k8s_resource AS resource, q.k8s_namespace AS namespace, \
                q.k8s_name AS name, q.k8s_subresource AS subresource, q.k8s_images AS images, q.k8s_privileged AS privileged, \
                q.k8s_host_paths AS host_paths, q.k8s_host_network AS host_network, d.effect, d.rules, d.reason, \
                res.code AS status_code, q.event_id \
         FROM events_dedup q \
         LEFT JOIN decisions d ON d.request_event_id = q.event_id \
         LEFT JOIN results res ON res.request_event_id = q.event_id \
         WHERE q.event_type = 'request_observed' AND q.protocol = 'kubernetes'",
    ),
    (
        "sessions",
        "SELECT o.session_id, o.identity, o.on_behalf_of, o.target, o.protocol, o.time AS opened, c.time AS closed, \
                c.reason AS close_reason, o.client_addr, o.login, o.day \
         FROM events_dedup o LEFT JOIN events_dedup c ON c.session_id = o.session_id AND c.event_type = 'session_closed' \
         WHERE o.event_type = 'session_opened'",
    ),
    (
        "approvals",
        "SELECT a.approval_id, a.time AS requested, a.identity, a.target, a.command, a.rules[1] AS rule, a.reviewer_group, \
                a.deadline, o.event_type AS outcome, o.time AS decided, o.reviewer, o.reason, a.request_event_id \
         FROM events_dedup a LEFT JOIN events_dedup o ON o.approval_id = a.approval_id \
              AND o.event_type IN ('approval_granted', 'approval_denied', 'approval_expired', 'approval_withdrawn') \
         WHERE a.event_type = 'approval_requested'",
    ),
    (
        "alerts",
        "SELECT time, day, identity, target, protocol, session_id, rules[1] AS rule, severity, tags, reason AS message, \
                effect, related_events, request_event_id, event_id \
         FROM events_dedup WHERE event_type = 'alert_raised'",
    ),
];
