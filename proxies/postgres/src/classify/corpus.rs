//! Measuring classification coverage over a workload: a psql script is cut into the
//! query strings psql would send, each is classified, and the statements are
//! counted by how they were classified. Used by the coverage tests and by
//! `examples/classify_corpus.rs` (any SQL files, such as PostgreSQL's regression
//! suite).

use std::collections::BTreeMap;

use gatehouse_events::payload::PgKind;

/// The query strings psql sends for `script`: meta-command lines are dropped (a
/// meta-command after a query on the same line ends that query, as `\gset` does),
/// `COPY ... FROM stdin` data is skipped up to its `\.`, and psql variables
/// (`:'v'`, `:"v"`) are replaced by a literal and an identifier. Approximate in the
/// way a measurement may be: a backslash is taken as a meta-command only after
/// whitespace.
pub fn psql_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_copy_data = false;
    for line in script.lines() {
        if in_copy_data {
            if line == "\\." {
                in_copy_data = false;
            }
            continue;
        }
        if line.trim_start().starts_with('\\') {
            if !current.trim().is_empty() && ends_query(line.trim_start()) {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let (sql, meta) = match meta_after(line) {
            Some(i) => (line.get(..i).unwrap_or(line), true),
            None => (line, false),
        };
        current.push_str(&variables(sql));
        current.push('\n');
        if meta {
            out.push(std::mem::take(&mut current));
            continue;
        }
        if sql.trim_end().ends_with(';') {
            let lower = current.to_lowercase();
            if lower.contains("from stdin") || lower.contains("from\nstdin") {
                in_copy_data = true;
            }
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Meta-commands that send the query buffer.
fn ends_query(meta: &str) -> bool {
    let cmd = meta.split_whitespace().next().unwrap_or("");
    matches!(
        cmd,
        "\\g" | "\\gset" | "\\gexec" | "\\gx" | "\\gdesc" | "\\crosstabview" | "\\watch" | "\\;"
    )
}

/// Where a meta-command starts on a line of SQL (a backslash and a letter after
/// whitespace, outside quotes).
fn meta_after(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut previous = b'\n';
    for (i, &c) in b.iter().enumerate() {
        let before = std::mem::replace(&mut previous, c);
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'-' && b.get(i + 1) == Some(&b'-') => return None,
            None if c == b'\\'
                && i > 0
                && before.is_ascii_whitespace()
                && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) =>
            {
                return Some(i);
            }
            None => {}
        }
    }
    None
}

/// psql variable references replaced by what psql would put there.
fn variables(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find(":'").or_else(|| rest.find(":\"")) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let quote = tail.as_bytes().get(1).copied().unwrap_or(b'\'');
        let body = tail.get(2..).unwrap_or("");
        match body.find(quote as char) {
            Some(end)
                if body
                    .get(..end)
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) =>
            {
                out.push_str(if quote == b'\'' { "'v'" } else { "\"v\"" });
                rest = body.get(end + 1..).unwrap_or("");
            }
            _ => {
                out.push_str(tail.get(..2).unwrap_or(""));
                rest = tail.get(2..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Statements counted by how they were classified.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Every statement.
    pub total: u64,
    /// Classified by the full walk.
    pub full: u64,
    /// Classified by PostgreSQL's grammar.
    pub fallback: u64,
    /// Not classified, though PostgreSQL's grammar accepts the text (what matters).
    pub unparsed_accepted: u64,
    /// Not classified, and PostgreSQL's grammar rejects it too (the workload's own
    /// errors: PostgreSQL would refuse them).
    pub rejected: u64,
    /// Leading keywords of the unparsed-but-accepted statements, with counts.
    pub unparsed_constructs: BTreeMap<String, u64>,
    /// A few unparsed-but-accepted statements, for the report.
    pub unparsed_samples: Vec<(String, String)>,
    /// Statement kinds, with counts.
    pub kinds: BTreeMap<String, u64>,
    /// Statements classified by the fallback, by leading keywords.
    pub fallback_constructs: BTreeMap<String, u64>,
}

impl Tally {
    /// Classifies each query string of `strings` and counts its statements.
    pub fn add_all<'a>(&mut self, strings: impl IntoIterator<Item = &'a str>) {
        for s in strings {
            self.add(s);
        }
    }

    /// Classifies one query string and counts its statements.
    pub fn add(&mut self, sql: &str) {
        let Ok(classified) = super::classify(sql, 100_000) else {
            return;
        };
        for c in classified {
            if c.text.trim().is_empty() {
                continue;
            }
            self.total += 1;
            *self.kinds.entry(c.stmt.kind.to_string()).or_default() += 1;
            let construct = super::construct(&c.text);
            if c.stmt.kind != PgKind::Unparsed {
                if c.stmt.fallback.is_some() {
                    self.fallback += 1;
                    *self.fallback_constructs.entry(construct).or_default() += 1;
                } else {
                    self.full += 1;
                }
            } else if pg_query::parse(&c.text, 0).is_ok() {
                self.unparsed_accepted += 1;
                *self.unparsed_constructs.entry(construct).or_default() += 1;
                if self.unparsed_samples.len() < 20 {
                    self.unparsed_samples
                        .push((c.text.clone(), c.stmt.parse_error.unwrap_or_default()));
                }
            } else {
                self.rejected += 1;
            }
        }
    }

    /// Statements PostgreSQL's grammar accepts: the denominator.
    pub fn accepted(&self) -> u64 {
        self.total - self.rejected
    }

    /// The fraction of accepted statements left unparsed.
    pub fn unparsed_rate(&self) -> f64 {
        if self.accepted() == 0 {
            return 0.0;
        }
        self.unparsed_accepted as f64 / self.accepted() as f64
    }

    /// A short report.
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} statements; {} accepted by PostgreSQL's grammar: {} classified by the full walk, {} by the fallback, {} unparsed ({:.3} %); {} rejected by both\n",
            self.total,
            self.accepted(),
            self.full,
            self.fallback,
            self.unparsed_accepted,
            100.0 * self.unparsed_rate(),
            self.rejected,
        );
        s.push_str(&format!("kinds: {:?}\n", self.kinds));
        s.push_str(&format!(
            "fallback constructs: {:?}\n",
            self.fallback_constructs
        ));
        s.push_str(&format!(
            "unparsed constructs: {:?}\n",
            self.unparsed_constructs
        ));
        for (sql, why) in &self.unparsed_samples {
            let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            s.push_str(&format!(
                "  unparsed: {} -- {}\n",
                one_line.chars().take(160).collect::<String>(),
                why.chars().take(160).collect::<String>()
            ));
        }
        s
    }
}
