//! How the language sees events: a [`Schema`] resolves field paths once at load, and a
//! [`Context`] hands out field values by [`FieldId`] at evaluation time.
//!
//! The DSL knows no event types: the engine implements both traits for its events
//! (like VRL's `Target`), so this crate stays independent of the event schema.

use std::net::IpAddr;

/// A resolved field: a small integer chosen by the [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

/// The static type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// Integer.
    Int,
    /// Boolean.
    Bool,
    /// Timestamp (microseconds since the Unix epoch, UTC). Has derived fields
    /// `.hour`, `.minute`, `.weekday`, `.of_day` and `.date`.
    Time,
    /// IP address, testable against CIDR blocks with `in`.
    Ip,
    /// List of text values.
    StrList,
    /// Text from a closed set of values; comparisons with other values are load errors.
    Enum(&'static [&'static str]),
}

impl FieldType {
    /// Name used in diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "str",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Time => "time",
            FieldType::Ip => "ip",
            FieldType::StrList => "list",
            FieldType::Enum(_) => "str",
        }
    }
}

/// What a [`Schema`] knows about a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The id the [`Context`] is asked for.
    pub id: FieldId,
    /// The type of its values.
    pub ty: FieldType,
    /// True for envelope fields present on every event kind (identity, target, ...):
    /// only those may key a sequence, since results and session events must find the
    /// same key.
    pub envelope: bool,
}

/// Field catalogue of an event model.
pub trait Schema {
    /// Resolves a dotted path such as `pg.statement.kind`.
    fn lookup(&self, path: &str) -> Option<FieldInfo>;

    /// Every known path (for suggestions and documentation).
    fn paths(&self) -> Vec<&str>;

    /// Result-side capture sources, written as calls with one string argument, e.g.
    /// `pg.result.column` for `pg.result.column("hostname")`.
    fn result_sources(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Event kinds inline tests may use (`pg`, `ssh`, `result`, ...); empty means any.
    fn test_event_kinds(&self) -> Vec<&str> {
        Vec::new()
    }

    /// For a field whose values are always in one canonical form (identity names,
    /// case-folded), the canonical form of `value`. A text constant compared with such
    /// a field that is not in that form can never match, and is a load error (E0013)
    /// naming the form to write. `None` (the default): any text may match.
    fn canonical(&self, field: FieldId, value: &str) -> Option<String> {
        let _ = (field, value);
        None
    }
}

/// Two borrowed slices seen as one list (so `tables = read ∪ written` needs no copy).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListRef<'a> {
    first: &'a [String],
    second: &'a [String],
}

impl<'a> ListRef<'a> {
    /// One slice.
    pub fn new(items: &'a [String]) -> Self {
        Self {
            first: items,
            second: &[],
        }
    }

    /// Two slices, concatenated.
    pub fn concat(first: &'a [String], second: &'a [String]) -> Self {
        Self { first, second }
    }

    /// The elements.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.first
            .iter()
            .chain(self.second.iter())
            .map(String::as_str)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A field value, borrowed from the event.
#[derive(Debug, Clone, Copy, Default)]
pub enum Value<'a> {
    /// The field does not apply to this event (an `ssh.*` field on a Postgres request)
    /// or is unset. Comparisons with a missing value are *unknown*, never true.
    #[default]
    Missing,
    /// Text (also enum fields).
    Str(&'a str),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// List of text values.
    List(ListRef<'a>),
    /// Timestamp, microseconds since the Unix epoch (UTC).
    Time(i64),
    /// IP address.
    Ip(IpAddr),
}

impl Value<'_> {
    /// Type name, for diagnostics of misbehaving contexts.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "missing",
            Value::Str(_) => "str",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::List(_) => "list",
            Value::Time(_) => "time",
            Value::Ip(_) => "ip",
        }
    }

    /// Renders the value for messages and captures (lists joined with `, `).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Value::Missing => {}
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::List(l) => {
                for (i, s) in l.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(s);
                }
            }
            Value::Time(t) => out.push_str(&crate::time::format_timestamp(*t)),
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
        }
    }
}

/// One event, as the evaluator sees it.
pub trait Context {
    /// The value of a field resolved by the [`Schema`] this rule set was checked with.
    fn get(&self, field: FieldId) -> Value<'_>;

    /// An opaque id of the event (its event id), recorded in sequence matches so that
    /// alerts can list related events and results can find the stage they feed.
    fn event_ref(&self) -> u128 {
        0
    }
}
