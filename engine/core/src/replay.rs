//! Renders a recorded session from its events, for every protocol: asciicast v2 (for
//! `asciinema play`; the session's byte streams: SSH channels, Kubernetes exec/attach),
//! plain text (commands in order with their decisions, results and outputs), or the
//! events as JSON lines.

use std::fmt::Write as _;

use base64::Engine as _;
use gatehouse_events::payload::{DataDirection, Payload, RequestDetail, SshRequestKind};
use gatehouse_events::{Event, Protocol};

/// Output formats of `gatehouse replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFormat {
    /// asciicast v2.
    Asciicast,
    /// Commands, decisions and outputs.
    Text,
    /// The session's events, one JSON object per line.
    Json,
}

/// Characters of a result sample line shown by the text format.
const SAMPLE_LINE_CHARS: usize = 160;

fn bytes_of(text: Option<&str>, b64: Option<&str>) -> Vec<u8> {
    match (text, b64) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    }
}

/// The events of `session`, in log order.
pub fn session_events<'e>(events: &'e [Event], session: &str) -> Vec<&'e Event> {
    events
        .iter()
        .filter(|e| e.session_id.as_deref() == Some(session))
        .collect()
}

/// Renders the events of one session (already filtered, in log order).
pub fn render(events: &[&Event], format: ReplayFormat) -> String {
    match format {
        ReplayFormat::Json => events
            .iter()
            .filter_map(|e| e.to_json().ok())
            .map(|j| String::from_utf8_lossy(&j).into_owned() + "\n")
            .collect(),
        ReplayFormat::Asciicast => asciicast(events),
        ReplayFormat::Text => text(events),
    }
}

fn asciicast(events: &[&Event]) -> String {
    let first = events.first();
    let title = first
        .map(|e| {
            format!(
                "gatehouse {} {}@{}",
                e.session_id.as_deref().unwrap_or("-"),
                e.identity_name().unwrap_or("-"),
                e.target.as_deref().unwrap_or("-")
            )
        })
        .unwrap_or_default();
    let header = serde_json::json!({
        "version": 2,
        "width": 120,
        "height": 40,
        "timestamp": first.map(|e| e.time.timestamp()).unwrap_or(0),
        "title": title,
        "env": {"TERM": "xterm-256color"},
    });
    let mut out = header.to_string();
    out.push('\n');
    for e in events {
        if let Payload::SessionData(d) = &e.payload {
            let kind = match d.direction {
                DataDirection::Input => "i",
                DataDirection::Output | DataDirection::Error => "o",
            };
            let data = bytes_of(d.text.as_deref(), d.base64.as_deref());
            let line = serde_json::json!([
                d.elapsed_us as f64 / 1e6,
                kind,
                String::from_utf8_lossy(&data)
            ]);
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

fn text(events: &[&Event]) -> String {
    let mut out = String::new();
    let mut decisions = std::collections::HashMap::new();
    for e in events {
        if let Payload::DecisionMade(d) = &e.payload
            && let Some(r) = d.request
        {
            decisions.insert(r, (d.effect, d.reason.clone()));
        }
    }
    let start = events.first().map(|e| e.time);
    let at = |e: &Event| {
        start
            .map(|s| (e.time - s).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    for e in events {
        match &e.payload {
            Payload::SessionOpened(s) => {
                let _ = writeln!(
                    out,
                    "[{:>8.3}s] session {} opened: {} -> {} ({})",
                    at(e),
                    e.session_id.as_deref().unwrap_or("-"),
                    e.identity_name().unwrap_or("-"),
                    s.upstream_host.as_deref().unwrap_or("-"),
                    e.target.as_deref().unwrap_or("-")
                );
            }
            Payload::RequestObserved(r) => {
                let (effect, reason) = decisions
                    .get(&e.id)
                    .map(|(ef, re)| (ef.as_str().to_owned(), re.clone()))
                    .unwrap_or_else(|| ("?".into(), None));
                if let RequestDetail::Ssh(ssh) = &r.detail
                    && let Some(p) = &ssh.process
                {
                    // A guarded host's process (ADR 0023): drawn under the command or
                    // shell line that started it, one level per parent.
                    let depth = p.parents.len() + 1;
                    let what = match ssh.kind {
                        SshRequestKind::Connect => format!(
                            "connect {}:{} by {}",
                            p.address.as_deref().unwrap_or("-"),
                            p.port.unwrap_or(0),
                            p.exe
                        ),
                        SshRequestKind::Spawn => format!(
                            "{} made the session's task number {}",
                            p.exe,
                            p.tasks.unwrap_or(0)
                        ),
                        _ if p.killed.is_some() => format!(
                            "killed at exec: loaded {} instead of {}",
                            p.killed.as_deref().unwrap_or("-"),
                            p.exe
                        ),
                        _ => format!("{} ({})", r.command, p.exe),
                    };
                    let _ = writeln!(
                        out,
                        "[{:>8.3}s] {:indent$}└ pid {} {}   => {}{}",
                        at(e),
                        "",
                        p.pid,
                        what,
                        effect,
                        reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                        indent = 2 * depth
                    );
                    continue;
                }
                let _ = writeln!(
                    out,
                    "[{:>8.3}s] {} $ {}   => {}{}",
                    at(e),
                    r.detail.action(),
                    r.command,
                    effect,
                    reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
            Payload::SessionData(d) if d.direction != DataDirection::Input => {
                let data = bytes_of(d.text.as_deref(), d.base64.as_deref());
                out.push_str(&String::from_utf8_lossy(&data).replace('\r', ""));
            }
            Payload::ResultObserved(r) => {
                if e.protocol == Some(Protocol::Ssh) {
                    // The output itself came as session data; close it with the status.
                    if let Some(code) = &r.code {
                        let _ = writeln!(out, "\n[{:>8.3}s] exit {code}", at(e));
                    }
                    continue;
                }
                let _ = write!(out, "[{:>8.3}s]   <- {}", at(e), r.status.as_str());
                if let Some(code) = &r.code {
                    let _ = write!(out, " {code}");
                }
                if let Some(rows) = r.rows {
                    let _ = write!(out, ", {rows} rows");
                }
                if r.masked > 0 {
                    let _ = write!(out, ", {} values masked", r.masked);
                }
                if let Some(us) = r.duration_us {
                    let _ = write!(out, ", {:.3} ms", us as f64 / 1000.0);
                }
                if let Some(message) = &r.message {
                    let _ = write!(out, ": {message}");
                }
                out.push('\n');
                if let Some(sample) = &r.sample {
                    // Text is for reading: long lines are cut (`--format json` has
                    // the whole recorded sample).
                    for line in sample.lines() {
                        match line.char_indices().nth(SAMPLE_LINE_CHARS) {
                            Some((cut, _)) => {
                                let _ = writeln!(
                                    out,
                                    "             | {}…",
                                    line.get(..cut).unwrap_or(line)
                                );
                            }
                            None => {
                                let _ = writeln!(out, "             | {line}");
                            }
                        }
                    }
                }
            }
            Payload::SessionClosed(c) => {
                let _ = writeln!(out, "[{:>8.3}s] session closed: {}", at(e), c.reason);
            }
            _ => {}
        }
    }
    out
}
