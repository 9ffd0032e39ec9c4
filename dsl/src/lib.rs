//! The Gatehouse rules language: parse -> check -> compile -> evaluate.
//!
//! ```text
//! text --parse--> ast::File --check(Schema)--> typed program --compile--> RuleSet
//! RuleSet::evaluate(&impl Context, &mut SequenceState) -> Verdict
//! ```
//!
//! The crate knows no event types: the engine implements [`Schema`] (field catalogue,
//! resolved once at load) and [`Context`] (field values by [`FieldId`]) for its events.
//! No I/O, no clock, no async: event time comes from the event.
//!
//! ```
//! use gatehouse_dsl::{load, testing::MapSchema, testing::MapContext, Effect, SequenceState, Sources};
//!
//! let schema = MapSchema::example();
//! let mut sources = Sources::new();
//! sources.add("a.rules", r#"rule ok { when identity == "bot" then allow }"#);
//! let rules = load(sources, &schema, Default::default()).map_err(|e| e.diagnostics).unwrap();
//! let event = MapContext::new(&schema).with_str("identity", "bot");
//! let verdict = rules.evaluate(&event, &mut SequenceState::default());
//! assert_eq!(verdict.effect, Effect::Allow);
//! ```

#![warn(missing_docs)]

pub mod ast;
mod check;
pub mod diag;
mod eval;
pub mod fmt;
mod ir;
pub mod mask;
mod program;
mod ruleset;
pub mod schema;
mod sequence;
pub mod span;
mod suggest;
mod syntax;
mod template;
pub mod testing;
pub mod time;
mod verdict;

pub use check::{CAPTURE_BYTES, CAPTURE_LIMIT, CheckOptions, MAX_STAGES};
pub use diag::{Code, Diagnostic, Level};
pub use eval::Tri;
pub use ruleset::{Explanation, RuleSet, RuleSetOptions};
pub use schema::{Context, FieldId, FieldInfo, FieldType, ListRef, Schema, Value};
pub use sequence::{Limits, SequenceState};
pub use span::{Source, Sources, Span, Spanned};
pub use verdict::{
    Alert, Approval, CaptureRequest, Effect, Eviction, EvictionReason, Matched, Severity, Verdict,
};

/// Parses one file into its syntax tree. `file` is the index its spans carry.
pub fn parse(file: u32, text: &str) -> Result<ast::File, Diagnostic> {
    syntax::parse(file, text)
}

/// Parses and formats a file canonically.
pub fn format(text: &str) -> Result<String, Diagnostic> {
    Ok(fmt::format_file(&parse(0, text)?))
}

/// Loading failed: every diagnostic (errors and warnings) with the sources to render
/// them against.
#[derive(Debug, thiserror::Error)]
#[error("the policy has {} error(s)", self.error_count())]
pub struct LoadError {
    /// All diagnostics, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The files.
    pub sources: Sources,
}

impl LoadError {
    /// Number of errors (not warnings).
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == Level::Error)
            .count()
    }
}

/// Options of [`load`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Checker options.
    pub check: CheckOptions,
    /// Rule set options.
    pub rules: RuleSetOptions,
}

/// Parses every file, checks the whole policy against `schema` and compiles it. All
/// errors of all files are reported at once.
pub fn load(
    sources: Sources,
    schema: &dyn Schema,
    options: LoadOptions,
) -> Result<RuleSet, LoadError> {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for (i, src) in sources.iter() {
        match syntax::parse(i, &src.text) {
            Ok(f) => files.push(f),
            Err(d) => diagnostics.push(d),
        }
    }
    if !diagnostics.is_empty() {
        return Err(LoadError {
            diagnostics,
            sources,
        });
    }
    let (program, diagnostics) = check::check(&files, schema, options.check);
    match program {
        Some(p) => Ok(RuleSet::new(p, sources, diagnostics, options.rules)),
        None => Err(LoadError {
            diagnostics,
            sources,
        }),
    }
}

/// Every diagnostic code with its title and explanation, as Markdown (the content of
/// `docs/errors.md`).
pub fn error_reference() -> String {
    let mut out = String::from(
        "# Rules language diagnostics\n\n\
         <!-- Generated from `gatehouse_dsl::Code` by `gatehouse rules errors`; do not edit. -->\n\n\
         Every diagnostic of `gatehouse rules check` carries one of these codes. Codes are \
         stable: never renumbered, never reused. `E` codes are errors (the policy does not \
         load), `W` codes are warnings.\n",
    );
    for code in Code::ALL {
        out.push_str(&format!(
            "\n## {}: {}\n\n{}\n",
            code.as_str(),
            code.title(),
            code.explanation()
        ));
        if let Some(ex) = code.example() {
            out.push_str(&format!("\nExample:\n\n```\n{ex}\n```\n"));
        }
    }
    out
}
