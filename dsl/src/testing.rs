//! A small in-memory schema and context, for tests, docs and benchmarks of the
//! language without an event model.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::schema::{Context, FieldId, FieldInfo, FieldType, ListRef, Schema, Value};

/// Values of `pg.statement.kind` in the example schema.
pub const PG_KINDS: &[&str] = &[
    "select", "insert", "update", "delete", "drop", "truncate", "create", "alter", "grant", "copy",
    "other",
];

/// A schema from a fixed list of `(path, type, envelope)`.
#[derive(Debug, Clone)]
pub struct MapSchema {
    fields: Vec<(&'static str, FieldType, bool)>,
}

impl MapSchema {
    /// A schema with these fields.
    pub fn new(fields: Vec<(&'static str, FieldType, bool)>) -> Self {
        Self { fields }
    }

    /// A small schema shaped like the engine's: `identity`, `target`, `time`,
    /// `client.ip`, `pg.statement.{kind,tables,has_where,count}`, `ssh.{program,
    /// programs,argv,target.host}`, `k8s.{verb,resource,namespace}`, `event.type`,
    /// `session`, `ssh.session.open`.
    pub fn example() -> Self {
        Self::new(vec![
            ("identity", FieldType::Str, true),
            ("target", FieldType::Str, true),
            ("session", FieldType::Str, true),
            ("time", FieldType::Time, true),
            ("client.ip", FieldType::Ip, true),
            (
                "event.type",
                FieldType::Enum(&["request", "result", "session_closed"]),
                true,
            ),
            ("pg.statement.kind", FieldType::Enum(PG_KINDS), false),
            ("pg.statement.tables", FieldType::StrList, false),
            ("pg.statement.has_where", FieldType::Bool, false),
            ("pg.statement.count", FieldType::Int, false),
            ("ssh.program", FieldType::Str, false),
            ("ssh.programs", FieldType::StrList, false),
            ("ssh.argv", FieldType::StrList, false),
            ("ssh.target.host", FieldType::Str, false),
            ("ssh.session.open", FieldType::Bool, false),
            (
                "k8s.verb",
                FieldType::Enum(&["get", "list", "create", "delete", "exec"]),
                false,
            ),
            ("k8s.resource", FieldType::Str, false),
            ("k8s.namespace", FieldType::Str, false),
        ])
    }

    fn id(&self, path: &str) -> Option<FieldId> {
        self.fields
            .iter()
            .position(|(p, _, _)| *p == path)
            .and_then(|i| u16::try_from(i).ok())
            .map(FieldId)
    }
}

impl Schema for MapSchema {
    fn lookup(&self, path: &str) -> Option<FieldInfo> {
        let id = self.id(path)?;
        let (_, ty, envelope) = self.fields.get(usize::from(id.0))?;
        Some(FieldInfo {
            id,
            ty: *ty,
            envelope: *envelope,
        })
    }

    fn paths(&self) -> Vec<&str> {
        self.fields.iter().map(|(p, _, _)| *p).collect()
    }

    fn result_sources(&self) -> Vec<&str> {
        vec!["pg.result.column"]
    }
}

/// An owned field value of a [`MapContext`].
#[derive(Debug, Clone)]
pub enum Owned {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// List.
    List(Vec<String>),
    /// Time (microseconds).
    Time(i64),
    /// IP.
    Ip(IpAddr),
}

/// An event as a map from field ids to values.
#[derive(Debug, Clone)]
pub struct MapContext<'s> {
    schema: &'s MapSchema,
    values: HashMap<FieldId, Owned>,
    event_ref: u128,
}

impl<'s> MapContext<'s> {
    /// An event with no fields set.
    pub fn new(schema: &'s MapSchema) -> Self {
        Self {
            schema,
            values: HashMap::new(),
            event_ref: 0,
        }
    }

    /// Sets a field (ignored when the schema has no such path).
    pub fn with(mut self, path: &str, value: Owned) -> Self {
        if let Some(id) = self.schema.id(path) {
            self.values.insert(id, value);
        }
        self
    }

    /// Sets a text field.
    pub fn with_str(self, path: &str, value: &str) -> Self {
        self.with(path, Owned::Str(value.to_owned()))
    }

    /// Sets a list field.
    pub fn with_list(self, path: &str, values: &[&str]) -> Self {
        self.with(
            path,
            Owned::List(values.iter().map(|s| (*s).to_owned()).collect()),
        )
    }

    /// Sets the event time, in seconds since the epoch.
    pub fn at(self, seconds: i64) -> Self {
        self.with("time", Owned::Time(seconds * crate::time::SECOND))
    }

    /// Sets the event ref.
    pub fn with_ref(mut self, r: u128) -> Self {
        self.event_ref = r;
        self
    }
}

impl Context for MapContext<'_> {
    fn get(&self, field: FieldId) -> Value<'_> {
        match self.values.get(&field) {
            None => Value::Missing,
            Some(Owned::Str(s)) => Value::Str(s),
            Some(Owned::Int(i)) => Value::Int(*i),
            Some(Owned::Bool(b)) => Value::Bool(*b),
            Some(Owned::List(l)) => Value::List(ListRef::new(l)),
            Some(Owned::Time(t)) => Value::Time(*t),
            Some(Owned::Ip(ip)) => Value::Ip(*ip),
        }
    }

    fn event_ref(&self) -> u128 {
        self.event_ref
    }
}
