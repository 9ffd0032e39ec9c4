//! `gatehouse rules ...`: check, test, format and explain `.rules` files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use gatehouse_core::policy::{self, Policy, PolicyError, PolicyOptions};
use gatehouse_dsl::{CheckOptions, Diagnostic, LoadOptions, Sources, Tri};
use serde_json::json;

/// Width diagnostics are laid out for (fixed, so output is stable).
const WIDTH: usize = 100;

/// Diagnostic output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ErrorFormat {
    /// Rendered for people: code, location, underlined source, help.
    Human,
    /// One JSON document with every diagnostic.
    Json,
}

/// Rules subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files: every error at once, with codes, spans and help.
    Check {
        /// The `.rules` files of one policy.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format of diagnostics.
        #[arg(long, value_enum, default_value_t = ErrorFormat::Human)]
        error_format: ErrorFormat,
        /// The date expired exceptions are judged against (default: today, UTC).
        #[arg(long, value_name = "YYYY-MM-DD")]
        today: Option<String>,
    },
    /// Run the inline tests of rule files.
    Test {
        /// The `.rules` files of one policy.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Format rule files canonically (in place).
    Fmt {
        /// Files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write; exit 1 when a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Show which rules match an event and why.
    Explain {
        /// The event, in Gatehouse's native JSON form.
        #[arg(long, value_name = "FILE.json")]
        event: PathBuf,
        /// The client address of the session, if the event does not carry it.
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
        /// The `.rules` files of the policy.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the diagnostic code reference (the content of `docs/errors.md`).
    Errors,
}

/// Runs a rules subcommand.
pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Check {
            files,
            error_format,
            today,
        } => check(&files, error_format, today.as_deref()),
        RulesCommand::Test { files } => test(&files),
        RulesCommand::Fmt { files, check } => fmt(&files, check),
        RulesCommand::Explain {
            event,
            client_ip,
            files,
        } => explain(&event, client_ip, &files),
        RulesCommand::Errors => {
            print!("{}", gatehouse_dsl::error_reference());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn today_days(arg: Option<&str>) -> anyhow::Result<i64> {
    match arg {
        Some(d) => gatehouse_dsl::time::parse_date(d)
            .with_context(|| format!("`{d}` is not a date (YYYY-MM-DD)")),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Ok(i64::try_from(secs / 86_400).unwrap_or(0))
        }
    }
}

fn diagnostic_json(d: &Diagnostic, sources: &Sources) -> serde_json::Value {
    let (file, line, column) = d.location(sources);
    let (end_line, end_column) = sources
        .get(d.span.file)
        .map_or((0, 0), |s| s.line_col(d.span.end as usize));
    json!({
        "code": d.code.as_str(),
        "severity": d.severity().as_str(),
        "message": d.message,
        "file": file,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "start": d.span.start,
        "end": d.span.end,
        "label": d.label,
        "help": d.help,
        "related": d.related.iter().map(|(span, label)| {
            let (f, l, c) = Diagnostic::error(d.code, "", *span).location(sources);
            json!({"file": f, "line": l, "column": c, "label": label})
        }).collect::<Vec<_>>(),
        "rendered": d.render(sources, WIDTH),
    })
}

fn check(files: &[PathBuf], format: ErrorFormat, today: Option<&str>) -> anyhow::Result<ExitCode> {
    let sources = policy::read_sources(files)?;
    let options = PolicyOptions {
        load: LoadOptions {
            check: CheckOptions {
                today: Some(today_days(today)?),
            },
            ..LoadOptions::default()
        },
        ..PolicyOptions::default()
    };
    let (diagnostics, sources, ok) = match Policy::from_sources(sources.clone(), options) {
        Ok(p) => (p.warnings().to_vec(), sources, true),
        Err(PolicyError::Invalid(e)) => (e.diagnostics, e.sources, false),
        Err(e) => return Err(e.into()),
    };
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity() == gatehouse_dsl::Level::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    match format {
        ErrorFormat::Json => {
            let doc = json!({
                "ok": ok,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diagnostics.iter().map(|d| diagnostic_json(d, &sources)).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        ErrorFormat::Human => {
            for d in &diagnostics {
                eprintln!("{}", d.render(&sources, WIDTH));
            }
            if ok {
                eprintln!("ok: {} file(s), {} warning(s)", files.len(), warnings);
            } else {
                eprintln!("error: {errors} error(s), {warnings} warning(s)");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn test(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let sources = policy::read_sources(files)?;
    let outcomes = match policy::run_tests(sources, PolicyOptions::default()) {
        Ok(o) => o,
        Err(PolicyError::Invalid(e)) => {
            for d in &e.diagnostics {
                eprintln!("{}", d.render(&e.sources, WIDTH));
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let mut failed = 0;
    for o in &outcomes {
        if o.failures.is_empty() {
            println!("test {} ... ok ({} steps)", o.name, o.steps);
        } else {
            failed += 1;
            println!("test {} ... FAILED", o.name);
            for f in &o.failures {
                println!("  at {}", f.location);
                println!("    {}", f.step);
                for line in f.diff().lines() {
                    println!("    {line}");
                }
            }
        }
    }
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn fmt(files: &[PathBuf], check: bool) -> anyhow::Result<ExitCode> {
    let mut unformatted = 0;
    let mut broken = 0;
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let formatted = match gatehouse_dsl::format(&text) {
            Ok(f) => f,
            Err(d) => {
                let mut sources = Sources::new();
                sources.add(path.display().to_string(), text);
                eprintln!("{}", d.render(&sources, WIDTH));
                broken += 1;
                continue;
            }
        };
        if formatted != text {
            unformatted += 1;
            if check {
                println!("{} is not formatted", path.display());
            } else {
                std::fs::write(path, formatted)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
                println!("formatted {}", path.display());
            }
        }
    }
    Ok(if broken > 0 || (check && unformatted > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn tri(t: Tri) -> &'static str {
    match t {
        Tri::True => "true   ",
        Tri::False => "false  ",
        Tri::Unknown => "unknown",
    }
}

fn explain(
    event_path: &PathBuf,
    client_ip: Option<std::net::IpAddr>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let policy = match Policy::load(files, PolicyOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", e.render(WIDTH));
            return Ok(ExitCode::from(1));
        }
    };
    let bytes = std::fs::read(event_path)
        .with_context(|| format!("cannot read `{}`", event_path.display()))?;
    let event = gatehouse_events::Event::from_json(&bytes)
        .with_context(|| format!("`{}` is not a Gatehouse event", event_path.display()))?;
    for ex in policy.explain(&event) {
        let mark = if ex.matched { "MATCH" } else { "-    " };
        let effect = ex.effect.map_or("alert", |e| e.as_str());
        println!("{mark} {} {} ({effect})", ex.kind, ex.name);
        if ex.matched || ex.conditions.iter().any(|(_, t)| *t == Tri::True) {
            for (text, t) in &ex.conditions {
                println!("        {} {text}", tri(*t));
            }
            for (name, owner, t, expired) in &ex.exceptions {
                let state = if *expired { " (expired)" } else { "" };
                println!(
                    "        unless {name} (owner {owner}){state}: {}",
                    tri(*t).trim()
                );
            }
        }
    }
    let verdict = policy.decide(&event, client_ip);
    println!();
    println!("decision: {}", verdict.effect.as_str());
    if let Some(r) = &verdict.reason {
        println!("reason: {r}");
    }
    if verdict.default_applied {
        println!("(no rule decided: the default applied)");
    }
    for a in &verdict.alerts {
        println!(
            "alert: {} severity {} (OCSF {}): {}",
            a.rule,
            a.severity.as_str(),
            a.severity.ocsf_id(),
            a.message
        );
    }
    for c in &verdict.captures {
        println!(
            "capture: {} = {}(\"{}\") limit {}",
            c.name, c.source, c.arg, c.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    #[test]
    fn check_exit_codes() {
        let ok = check(
            &[repo("examples/starter.rules")],
            ErrorFormat::Json,
            Some("2026-01-05"),
        )
        .unwrap();
        assert_eq!(ok, ExitCode::SUCCESS);
        let bad = check(
            &[repo("grammar/corpus/invalid/unknown_fields.rules")],
            ErrorFormat::Json,
            Some("2026-01-05"),
        )
        .unwrap();
        assert_eq!(bad, ExitCode::from(1));
        assert!(check(&[repo("does/not/exist.rules")], ErrorFormat::Human, None).is_err());
    }

    #[test]
    fn diagnostics_as_json() {
        let path = repo("grammar/corpus/invalid/enums.rules");
        let sources = policy::read_sources(std::slice::from_ref(&path)).unwrap();
        let err = match Policy::from_sources(sources, PolicyOptions::default()) {
            Err(PolicyError::Invalid(e)) => e,
            _ => panic!("expected diagnostics"),
        };
        let v = diagnostic_json(&err.diagnostics[0], &err.sources);
        assert_eq!(v["code"], "E0013");
        assert_eq!(v["severity"], "error");
        assert_eq!(v["line"], 2);
        assert_eq!(v["help"][0], "did you mean `drop`?");
        assert!(v["rendered"].as_str().unwrap().contains("enums.rules:2:"));
    }

    #[test]
    fn inline_tests_and_fmt_check() {
        assert_eq!(
            test(&[repo("examples/starter.rules")]).unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(
            fmt(&[repo("examples/starter.rules")], true).unwrap(),
            ExitCode::SUCCESS
        );
        let dir = tempfile::tempdir().unwrap();
        let messy = dir.path().join("m.rules");
        std::fs::write(&messy, "rule r{when true then allow}").unwrap();
        assert_eq!(
            fmt(std::slice::from_ref(&messy), true).unwrap(),
            ExitCode::from(1)
        );
        assert_eq!(
            fmt(std::slice::from_ref(&messy), false).unwrap(),
            ExitCode::SUCCESS
        );
        assert_eq!(
            std::fs::read_to_string(&messy).unwrap(),
            "rule r {\n  when true\n  then allow\n}\n"
        );
    }
}
