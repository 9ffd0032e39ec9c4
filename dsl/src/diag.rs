//! Diagnostics: coded, spanned, with help lines; rendered with `miette`.
//!
//! Every diagnostic carries a [`Code`] from the one registry below. Codes are stable:
//! never renumbered, never reused. `docs/errors.md` is generated from [`Code::ALL`].

use std::fmt;

use crate::span::{Sources, Span};

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = ($sev:ident, $title:literal, $explain:literal $(, $example:literal)?); )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $name, )*
        }

        impl Code {
            /// Every code, in registry order.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The code as written (`E0002`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => stringify!($name),)* }
            }

            /// One-line title.
            pub fn title(self) -> &'static str {
                match self { $(Code::$name => $title,)* }
            }

            /// Longer explanation (Markdown).
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$name => $explain,)* }
            }

            /// An example `.rules` snippet that triggers it, when there is a short one.
            pub fn example(self) -> Option<&'static str> {
                match self { $(Code::$name => codes!(@ex $($example)?),)* }
            }

            /// Whether this code is an error or a warning.
            pub fn severity(self) -> Level {
                match self { $(Code::$name => Level::$sev,)* }
            }
        }
    };
    (@ex) => { None };
    (@ex $e:literal) => { Some($e) };
}

codes! {
    /// Syntax error.
    E0001 = (Error, "syntax error",
        "The file does not follow the grammar in `grammar/rules.pest`. The help line lists what the parser expected at that point.",
        "rule r { when identity = \"x\" then allow }");
    /// Unknown field.
    E0002 = (Error, "unknown field",
        "A dotted name does not name an event field, list, macro, macro parameter or capture. Field names are listed in `docs/rules.md`; the help line suggests the closest known name.",
        "rule r { when pg.statment.kind == select then allow }");
    /// Type mismatch.
    E0003 = (Error, "type mismatch",
        "An operator was applied to operands of types it does not accept, or a condition is not boolean. See the operator table in `docs/rules.md`.",
        "rule r { when pg.statement.count contains \"x\" then allow }");
    /// Unknown name.
    E0004 = (Error, "unknown name",
        "A list, macro, sequence, stage, capture, severity or test expectation names something that is not defined.",
        "rule r { when sequence nope armed then block }");
    /// Duplicate definition.
    E0005 = (Error, "duplicate definition",
        "Two rules, sequences, lists, macros, stages, captures or exceptions share a name. Names are global across all files of a policy.",
        "list a = [\"x\"]\nlist a = [\"y\"]");
    /// Missing clause.
    E0006 = (Error, "missing clause",
        "A rule needs `when` and `then`; a sequence needs at least two stages, a `then` and an overall `within` window.",
        "rule r { when identity == \"x\" }");
    /// Duplicate clause.
    E0007 = (Error, "duplicate clause",
        "A clause that may appear once (`when`, `then`, `severity`, `tags`, `message`, `until`) appears twice in the same rule or sequence.",
        "rule r { when true then allow then block }");
    /// Invalid regex.
    E0008 = (Error, "invalid regex",
        "A regex literal does not compile with the linear-time `regex` crate (no look-around, no back-references), or is too large.",
        "rule r { when ssh.command matches /(a/ then block }");
    /// Invalid literal.
    E0009 = (Error, "invalid literal",
        "A duration, date, time of day, CIDR block, IP address or number is malformed or out of range.",
        "rule r { when time.of_day between 25:00 and 26:00 then block }");
    /// Unknown severity.
    E0010 = (Error, "unknown severity",
        "Severities are `informational`, `low`, `medium`, `high` and `critical` (OCSF `severity_id` 1 to 5).",
        "rule r { when true then alert severity urgent }");
    /// Bad macro call.
    E0011 = (Error, "bad macro call",
        "A macro was called with the wrong number or types of arguments, a parameter has an unknown type, or macros call each other in a cycle.",
        "macro m(p: str) = identity == p\nrule r { when m(1) then allow }");
    /// Bad message template.
    E0012 = (Error, "bad message template",
        "An alert `message` template names an unknown field in `{...}` or has an unbalanced brace. Write `{{` and `}}` for literal braces.",
        "rule r { when true then alert message \"{nope}\" }");
    /// Unknown enum value.
    E0013 = (Error, "unknown value",
        "A field with a fixed set of values (`pg.statement.kind`, `ssh.kind`, `k8s.verb`, `protocol`, `event.type`, `time.weekday`, ...) was compared with a value outside that set, or a field whose values are in one canonical form (`identity`, `identity.on_behalf_of`, `identity.role`: case-folded names) with text in another form, which could never match.",
        "rule r { when pg.statement.kind == dorp then block }");
    /// Result-side name in a request condition.
    E0014 = (Error, "result field in a condition",
        "Result-side names such as `pg.result.column(...)` are only valid as capture sources; to mask result columns use `then mask columns ...`.",
        "rule r { when pg.result.column(\"x\") == \"y\" then block }");
    /// Invalid sequence.
    E0015 = (Error, "invalid sequence",
        "A sequence refers to a capture of a later stage, keys on a field that is not part of the event envelope, has too many stages, or uses an effect that cannot apply to its completing event.",
        "sequence s by pg.statement.kind within 5m { stage a: true stage b: true then alert }");
    /// Invalid effect.
    E0016 = (Error, "invalid effect",
        "An effect is malformed: a mask without targets, an approval timeout of zero, a `keep` count out of range.",
        "rule r { when true then mask columns [] }");
    /// Invalid test.
    E0017 = (Error, "invalid test",
        "An inline test step is malformed: unknown step kind, unknown field, a value of the wrong type, or a relative time before any step.",
        "test \"t\" { at 09:00 nope { } => allow }");
    /// Value out of range.
    E0018 = (Error, "value out of range",
        "A capture limit, byte bound, window or timeout is outside the allowed range.",
        "sequence s within 5m { stage a: true capture x = identity limit 0 stage b: true then alert }");
    /// Expired exception.
    W0001 = (Warning, "expired exception",
        "An exception's `expires` date has passed: it no longer applies. Renew it (and say why) or delete it.",
        "rule r { when true unless old when true owner \"a\" expires 2020-01-01 then block }");
    /// Unused definition.
    W0002 = (Warning, "unused definition",
        "A list or macro is defined but never used.",
        "list unused = [\"x\"]");
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Stops the policy from loading.
    Error,
    /// Reported, but the policy loads.
    Warning,
}

impl Level {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One diagnostic: a coded message about a span, with optional help and notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Diagnostic {
    /// The code.
    pub code: Code,
    /// Lowercase message, user input in backticks.
    pub message: String,
    /// Where.
    pub span: Span,
    /// Label under the underline.
    pub label: Option<String>,
    /// Help lines (a suggestion, did-you-mean).
    pub help: Vec<String>,
    /// Other places that explain the error (e.g. the first definition).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    /// An error (or warning, per the code's registry entry).
    pub fn error(code: Code, message: impl Into<String>, span: Span) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            label: None,
            help: Vec::new(),
            related: Vec::new(),
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }

    /// Sets the label under the underline.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a related span.
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    /// Adds `did you mean `x`?` when a close candidate exists.
    pub fn with_suggestion<'a>(
        self,
        input: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match crate::suggest::closest(input, candidates) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    /// Error or warning.
    pub fn severity(&self) -> Level {
        self.code.severity()
    }

    /// Renders the diagnostic like a compiler would: header, `file:line:col`, the
    /// underlined source and help lines. No colours; `width` fixes the layout.
    pub fn render(&self, sources: &Sources, width: usize) -> String {
        let source = sources
            .get(self.span.file)
            .map(|src| miette::NamedSource::new(src.name.clone(), src.text.clone()));
        let report = Report { diag: self, source };
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(width)
                .with_links(false)
                .with_context_lines(1);
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            out = format!(
                "{}[{}]: {}\n",
                self.severity().as_str(),
                self.code,
                self.message
            );
        }
        out
    }

    /// `file:line:col` of the primary span.
    pub fn location(&self, sources: &Sources) -> (String, usize, usize) {
        match sources.get(self.span.file) {
            Some(src) => {
                let (l, c) = src.line_col(self.span.start as usize);
                (src.name.clone(), l, c)
            }
            None => (String::from("<unknown>"), 0, 0),
        }
    }
}

/// Adapter so miette can render a [`Diagnostic`] against its source.
struct Report<'a> {
    diag: &'a Diagnostic,
    source: Option<miette::NamedSource<String>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity() {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        if self.diag.help.is_empty() {
            None
        } else {
            Some(Box::new(self.diag.help.join("\n")))
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let primary = miette::LabeledSpan::new_primary_with_span(
            self.diag.label.clone(),
            (self.diag.span.start as usize, self.diag.span.len()),
        );
        let file = self.diag.span.file;
        let related = self
            .diag
            .related
            .iter()
            .filter(move |(span, _)| span.file == file)
            .map(|(span, label)| {
                miette::LabeledSpan::new_with_span(
                    Some(label.clone()),
                    (span.start as usize, span.len()),
                )
            });
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}
