//! Column lineage: for each output column of a statement that returns rows, the set
//! of source columns its value is computed from. Masks by column name follow it.
//!
//! Pure and conservative: where the sources cannot be known without the catalog
//! (`*` or a whole-row reference of a table whose columns were renamed, a table
//! function, a statement the walk does not model), the output is *opaque*: it may
//! hold any column, and is masked whole whenever a column mask is in effect.

mod copy;
mod known;
mod named;

use std::ops::ControlFlow;
use std::sync::Arc;

use copy::copy_format;
use known::known_function;
pub use named::Named;

use sqlparser::ast::{
    CopySource, Expr, FromTable, FunctionArgExpr, ObjectName, OutputClause, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, TableWithJoins,
    UpdateTableFromKind,
};

/// Where the value of one output column comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Column names (lowercase) the value is computed from.
    pub columns: Vec<String>,
    /// It may hold any column of some relation: masked whole under any column mask.
    pub opaque: bool,
    /// It is one column's value unchanged (a partial mask such as `keep last 4` may
    /// apply); otherwise it is a transformed value and is masked whole.
    pub direct: bool,
}

impl Source {
    fn named(n: &str) -> Self {
        Self {
            columns: vec![n.to_owned()],
            opaque: false,
            direct: true,
        }
    }

    fn opaque() -> Self {
        Self {
            opaque: true,
            ..Self::default()
        }
    }

    /// Adds `other` (the result is a transformed value).
    pub fn union(&mut self, other: &Source) {
        for c in &other.columns {
            if !self.columns.contains(c) {
                self.columns.push(c.clone());
            }
        }
        self.opaque |= other.opaque;
        self.direct = false;
    }
}

/// Output columns of unknown number (a `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rest {
    /// The columns of a table as named in it: each output column's source is the
    /// column of the same name (only usable where the result names its columns).
    NameBased,
    /// Every column derives from this.
    From(Source),
}

/// One item of an output list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// One column.
    One {
        /// Its name in the enclosing query (for references from outside).
        name: String,
        /// Its sources.
        src: Source,
    },
    /// Some columns (a `*`).
    Many(Rest),
}

/// The format of a `COPY ... TO STDOUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    /// `text`, `csv` or `binary`.
    pub kind: CopyKind,
    /// Field delimiter.
    pub delimiter: u8,
    /// CSV quote.
    pub quote: u8,
    /// CSV escape.
    pub escape: u8,
    /// A header line comes first (CSV).
    pub header: bool,
}

/// COPY data formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// Tab-separated text with backslash escapes.
    Text,
    /// Comma-separated values.
    Csv,
    /// PostgreSQL's binary COPY format.
    Binary,
}

/// What a statement's rows derive from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lineage {
    /// Not known: every column is opaque.
    #[default]
    Unknown,
    /// Rows described by a RowDescription, in this order.
    Rows(Vec<Out>),
    /// `COPY ... TO STDOUT`: columns in this order, in this format.
    Copy(Vec<Out>, CopyFormat),
    /// `DECLARE name CURSOR [WITH HOLD] FOR ...`: no rows; `FETCH` from it returns
    /// these.
    Declare(String, bool, Arc<Lineage>),
    /// `CLOSE name` (`None`: `CLOSE ALL`).
    Close(Option<String>),
    /// `COMMIT` or `ROLLBACK`: cursors not declared `WITH HOLD` end.
    EndTransaction,
    /// A statement that calls code the gateway does not know (user functions,
    /// procedures), which may open cursors or prepare statements under names the
    /// session used: what was remembered is forgotten. Its own rows: the inner.
    Calls(Arc<Lineage>),
    /// `FETCH ... name`.
    Fetch(String),
    /// `PREPARE name AS ...`: no rows; `EXECUTE name` returns these.
    Prepare(String, Arc<Lineage>),
    /// `EXECUTE name`.
    Execute(String),
    /// `DEALLOCATE name`, `DISCARD`: no rows; the names (all of them) are gone.
    Forget(Option<String>),
}

/// The lineage of one statement's results.
pub fn of(s: &Statement) -> Lineage {
    let l = statement(s);
    if matches!(s, Statement::Call(_)) || (!matches!(l, Lineage::Prepare(..)) && calls_unknown(s)) {
        return Lineage::Calls(Arc::new(l));
    }
    l
}

/// Whether `s` calls a function the gateway does not know.
fn calls_unknown(s: &Statement) -> bool {
    struct Calls(bool);
    impl sqlparser::ast::Visitor for Calls {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e
                && !known_function(&f.name)
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = tf
                && !known_function(name)
            {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = Calls(false);
    let _ = sqlparser::ast::Visit::visit(s, &mut v);
    v.0
}

fn statement(s: &Statement) -> Lineage {
    let scopes = Scopes::default();
    match s {
        Statement::Query(q) => Lineage::Rows(query(q, &scopes)),
        Statement::Insert(i) => {
            // The target's columns now hold what the source put there.
            let mut set = Vec::new();
            let mut any = Source::default();
            let columns: Vec<String> = i.columns.iter().map(|c| last(&object(c))).collect();
            if let Some(q) = &i.source {
                let items = query(q, &scopes);
                let fixed = items.iter().all(|o| matches!(o, Out::One { .. }));
                if fixed && !columns.is_empty() && items.len() == columns.len() {
                    for (c, o) in columns.iter().zip(&items) {
                        if let Out::One { src, .. } = o {
                            set.push((c.clone(), src.clone()));
                        }
                    }
                } else {
                    any = whole(&items);
                }
            }
            if i.on.is_some() {
                // ON CONFLICT DO UPDATE may set anything from the existing row.
                any.opaque = true;
            }
            let rel = Rel {
                alias: i
                    .table_alias
                    .as_ref()
                    .map(|a| a.alias.value.to_lowercase())
                    .unwrap_or_else(|| last(&i.table.to_string())),
                kind: RelKind::Assigned { set, any },
            };
            returning(i.returning.as_deref(), vec![rel], &scopes)
        }
        Statement::Update(u) => {
            let mut rels = Vec::new();
            from(std::slice::from_ref(&u.table), &scopes, &mut rels);
            if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) =
                &u.from
            {
                from(f, &scopes, &mut rels);
            }
            // Assigned columns hold their new values in RETURNING.
            let scope = scopes.with(rels.clone());
            let mut set = Vec::new();
            for a in &u.assignments {
                let src = expr(&a.value, &scope);
                match &a.target {
                    sqlparser::ast::AssignmentTarget::ColumnName(c) => {
                        set.push((last(&object(c)), src));
                    }
                    sqlparser::ast::AssignmentTarget::Tuple(cs) => {
                        for c in cs {
                            set.push((last(&object(c)), src.clone()));
                        }
                    }
                }
            }
            if let Some(target) = rels.first_mut() {
                target.kind = assigned(&target.kind, set, Source::default());
            }
            returning(u.returning.as_deref(), rels, &scopes)
        }
        Statement::Delete(d) => {
            let mut rels = Vec::new();
            let (FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) = &d.from;
            from(f, &scopes, &mut rels);
            if let Some(u) = &d.using {
                from(u, &scopes, &mut rels);
            }
            returning(d.returning.as_deref(), rels, &scopes)
        }
        Statement::Merge(m) => {
            let mut rels = Vec::new();
            table_factor(&m.table, &scopes, &mut rels);
            table_factor(&m.source, &scopes, &mut rels);
            // WHEN ... THEN UPDATE/INSERT may put any of the source in the target.
            let any = rels.get(1).map(Rel::whole).unwrap_or_else(Source::opaque);
            if let Some(target) = rels.first_mut() {
                target.kind = assigned(&target.kind, Vec::new(), any);
            }
            let items = match &m.output {
                Some(
                    OutputClause::Returning { select_items, .. }
                    | OutputClause::Output { select_items, .. },
                ) => Some(select_items.as_slice()),
                None => None,
            };
            returning(items, rels, &scopes)
        }
        Statement::Copy {
            source,
            to: true,
            options,
            legacy_options,
            ..
        } => {
            let cols = match source {
                CopySource::Query(q) => query(q, &scopes),
                CopySource::Table { columns, .. } if !columns.is_empty() => columns
                    .iter()
                    .map(|c| {
                        let n = c.value.to_lowercase();
                        Out::One {
                            src: Source::named(&n),
                            name: n,
                        }
                    })
                    .collect(),
                CopySource::Table { .. } => vec![Out::Many(Rest::NameBased)],
            };
            Lineage::Copy(cols, copy_format(options, legacy_options))
        }
        Statement::Copy { .. } => Lineage::Rows(Vec::new()),
        Statement::Declare { stmts } => match stmts.as_slice() {
            [d] => match (&d.for_query, d.names.as_slice()) {
                (Some(q), [n]) => Lineage::Declare(
                    n.value.to_lowercase(),
                    d.hold == Some(true),
                    Arc::new(Lineage::Rows(query(q, &scopes))),
                ),
                _ => Lineage::Rows(Vec::new()),
            },
            _ => Lineage::Rows(Vec::new()),
        },
        Statement::Fetch { name, .. } => Lineage::Fetch(name.value.to_lowercase()),
        Statement::Close { cursor } => Lineage::Close(match cursor {
            sqlparser::ast::CloseCursor::All => None,
            sqlparser::ast::CloseCursor::Specific { name } => Some(name.value.to_lowercase()),
        }),
        Statement::Commit { .. } | Statement::Rollback { .. } => Lineage::EndTransaction,
        Statement::Deallocate { name, .. } => match name.value.to_lowercase().as_str() {
            "all" if name.quote_style.is_none() => Lineage::Forget(None),
            n => Lineage::Forget(Some(n.to_owned())),
        },
        Statement::Discard { .. } => Lineage::Forget(None),
        Statement::Prepare {
            name, statement, ..
        } => Lineage::Prepare(name.value.to_lowercase(), Arc::new(of(statement))),
        Statement::Execute { name: Some(n), .. } => Lineage::Execute(last(&n.to_string())),
        Statement::Explain { .. } | Statement::ShowVariable { .. } => {
            Lineage::Rows(vec![Out::One {
                name: String::new(),
                src: Source::default(),
            }])
        }
        _ => Lineage::Rows(Vec::new()),
    }
}

impl Lineage {
    /// This lineage with every output column also derived from `extra` (columns a
    /// view reads under names of its own).
    pub fn widened(&self, extra: &[String]) -> Lineage {
        let add = Source {
            columns: extra.to_vec(),
            opaque: false,
            direct: false,
        };
        let items = |items: &[Out]| -> Vec<Out> {
            let mut out = Vec::with_capacity(items.len() + 1);
            for i in items {
                match i {
                    Out::One { name, src } => {
                        let mut src = src.clone();
                        src.union(&add);
                        out.push(Out::One {
                            name: name.clone(),
                            src,
                        });
                    }
                    Out::Many(Rest::From(s)) => {
                        let mut s = s.clone();
                        s.union(&add);
                        out.push(Out::Many(Rest::From(s)));
                    }
                    Out::Many(Rest::NameBased) => {
                        out.push(Out::Many(Rest::NameBased));
                        out.push(Out::Many(Rest::From(add.clone())));
                    }
                }
            }
            out
        };
        match self {
            Lineage::Rows(i) => Lineage::Rows(items(i)),
            Lineage::Copy(i, f) => Lineage::Copy(items(i), f.clone()),
            Lineage::Calls(inner) => Lineage::Calls(Arc::new(inner.widened(extra))),
            Lineage::Declare(n, hold, inner) => {
                Lineage::Declare(n.clone(), *hold, Arc::new(inner.widened(extra)))
            }
            Lineage::Prepare(n, inner) => {
                Lineage::Prepare(n.clone(), Arc::new(inner.widened(extra)))
            }
            other => other.clone(),
        }
    }

    /// The lineage of the rows, past a [`Lineage::Calls`].
    pub fn rows(&self) -> &Lineage {
        match self {
            Lineage::Calls(inner) => inner.rows(),
            l => l,
        }
    }

    /// The source of each of the `n` columns of a result, named `names` (empty when
    /// the result does not name them, as COPY). Where positions are not certain,
    /// every column concerned is opaque.
    pub fn columns(&self, names: &[&str], n: usize) -> Vec<Source> {
        let items = match self.rows() {
            Lineage::Rows(items) | Lineage::Copy(items, _) => items.as_slice(),
            _ => return vec![Source::opaque(); n],
        };
        let named = |i: usize| match names.get(i) {
            Some(name) => Source::named(&name.to_lowercase()),
            None => Source::opaque(),
        };
        let lead = items
            .iter()
            .take_while(|i| matches!(i, Out::One { .. }))
            .count();
        if lead == items.len() {
            if items.len() != n {
                return vec![Source::opaque(); n];
            }
            return items
                .iter()
                .map(|i| match i {
                    Out::One { src, .. } => src.clone(),
                    Out::Many(_) => Source::opaque(),
                })
                .collect();
        }
        let trail = items
            .iter()
            .rev()
            .take_while(|i| matches!(i, Out::One { .. }))
            .count();
        if lead + trail > n {
            return vec![Source::opaque(); n];
        }
        let middle = items.get(lead..items.len() - trail).unwrap_or_default();
        let src = |i: &Out| match i {
            Out::One { src, .. } => src.clone(),
            Out::Many(Rest::From(s)) => s.clone(),
            Out::Many(Rest::NameBased) => Source::opaque(),
        };
        (0..n)
            .map(|c| {
                if c < lead {
                    return items.get(c).map(src).unwrap_or_else(Source::opaque);
                }
                if c >= n - trail {
                    let j = items.len() - (n - c);
                    return items.get(j).map(src).unwrap_or_else(Source::opaque);
                }
                match middle {
                    [Out::Many(Rest::NameBased)] => named(c),
                    many => {
                        let mut s = Source::default();
                        for m in many {
                            match m {
                                Out::Many(Rest::NameBased) => s.union(&named(c)),
                                other => s.union(&src(other)),
                            }
                        }
                        s
                    }
                }
            })
            .collect()
    }
}

fn returning(items: Option<&[SelectItem]>, rels: Vec<Rel>, outer: &Scopes) -> Lineage {
    let Some(items) = items else {
        return Lineage::Rows(Vec::new());
    };
    let scopes = outer.with(rels);
    Lineage::Rows(projection(items, &scopes))
}

fn last(n: &str) -> String {
    n.rsplit('.')
        .next()
        .unwrap_or(n)
        .trim_matches('"')
        .to_lowercase()
}

/// A target table after a write: `set` columns hold these, any column may hold `any`.
fn assigned(kind: &RelKind, set: Vec<(String, Source)>, any: Source) -> RelKind {
    match kind {
        RelKind::Base(renamed) if renamed.is_empty() => RelKind::Assigned { set, any },
        // Renamed or not a table: every column may hold anything written.
        k => {
            let mut all = any;
            for (_, s) in &set {
                all.union(s);
            }
            match k {
                RelKind::Derived(items) => {
                    let mut items = items.clone();
                    items.push(Out::Many(Rest::From(all)));
                    RelKind::Derived(items)
                }
                _ => RelKind::Derived(vec![Out::Many(Rest::From(Source {
                    opaque: true,
                    ..all
                }))]),
            }
        }
    }
}

#[derive(Debug, Clone)]
enum RelKind {
    /// A table: its columns by name, with these leading columns renamed (an alias
    /// column list; which columns they rename is not known without the catalog).
    Base(Vec<String>),
    /// A derived table, CTE or function: its output items.
    Derived(Vec<Out>),
    /// A table written by the statement (for RETURNING): columns by name, these
    /// columns assigned values from these sources, and any column perhaps `any`.
    Assigned {
        set: Vec<(String, Source)>,
        any: Source,
    },
}

#[derive(Debug, Clone)]
struct Rel {
    alias: String,
    kind: RelKind,
}

impl Rel {
    /// The sources of its column `n`, if it may have one.
    fn column(&self, n: &str) -> Option<Source> {
        match &self.kind {
            RelKind::Base(renamed) if renamed.iter().any(|r| r == n) => Some(Source::opaque()),
            RelKind::Base(_) => Some(Source::named(n)),
            RelKind::Assigned { set, any } => {
                let mut s = Source::named(n);
                for (c, src) in set {
                    if c == n {
                        s.union(src);
                    }
                }
                if any.opaque || !any.columns.is_empty() {
                    s.union(any);
                }
                Some(s)
            }
            RelKind::Derived(items) => {
                let mut found: Option<Source> = None;
                for item in items {
                    let s = match item {
                        Out::One { name, src } if name == n => src.clone(),
                        Out::One { .. } => continue,
                        Out::Many(Rest::NameBased) => Source::named(n),
                        Out::Many(Rest::From(s)) => s.clone(),
                    };
                    match &mut found {
                        None => found = Some(s),
                        Some(f) => f.union(&s),
                    }
                }
                found
            }
        }
    }

    /// The sources of the whole row.
    fn whole(&self) -> Source {
        match &self.kind {
            RelKind::Base(_) | RelKind::Assigned { .. } => Source::opaque(),
            RelKind::Derived(items) => whole(items),
        }
    }

    /// What `alias.*` expands to.
    fn star(&self) -> Vec<Out> {
        match &self.kind {
            RelKind::Base(renamed) if renamed.is_empty() => vec![Out::Many(Rest::NameBased)],
            RelKind::Base(_) => vec![Out::Many(Rest::From(Source::opaque()))],
            RelKind::Assigned { set, any } => {
                let mut all = any.clone();
                for (_, s) in set {
                    all.union(s);
                }
                if all.opaque || !all.columns.is_empty() {
                    // Which positions were written is not known: all of them may be.
                    vec![Out::Many(Rest::NameBased), Out::Many(Rest::From(all))]
                } else {
                    vec![Out::Many(Rest::NameBased)]
                }
            }
            RelKind::Derived(items) => items.clone(),
        }
    }
}

/// Everything an output list may hold.
fn whole(items: &[Out]) -> Source {
    let mut s = Source::default();
    for item in items {
        match item {
            Out::One { src, .. } => s.union(src),
            Out::Many(Rest::NameBased) => s.opaque = true,
            Out::Many(Rest::From(f)) => s.union(f),
        }
    }
    s.direct = false;
    s
}

/// Applies an alias column list to output items.
fn rename(items: Vec<Out>, alias: Option<&TableAlias>) -> Vec<Out> {
    let Some(a) = alias.filter(|a| !a.columns.is_empty()) else {
        return items;
    };
    let names: Vec<String> = a
        .columns
        .iter()
        .map(|c| c.name.value.to_lowercase())
        .collect();
    let fixed = items
        .iter()
        .take(names.len())
        .all(|i| matches!(i, Out::One { .. }));
    if !fixed || items.len() < names.len() {
        // Positions not certain: every column may be any of them.
        return vec![Out::Many(Rest::From(whole(&items)))];
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match (item, names.get(i)) {
            (Out::One { src, .. }, Some(n)) => Out::One {
                name: n.clone(),
                src,
            },
            (item, _) => item,
        })
        .collect()
}

/// Relations visible at each query level, innermost last, and the CTEs.
#[derive(Debug, Clone, Default)]
struct Scopes {
    levels: Vec<Vec<Rel>>,
    ctes: Vec<Rel>,
    /// The innermost level joins with `USING` or `NATURAL`: its `*` merges the
    /// join columns, so positions are not certain.
    merged: bool,
}

impl Scopes {
    fn with(&self, rels: Vec<Rel>) -> Scopes {
        let mut s = self.clone();
        s.levels.push(rels);
        s.merged = false;
        s
    }

    fn cte(&self, n: &str) -> Option<&Rel> {
        self.ctes.iter().rev().find(|r| r.alias == n)
    }

    fn rel(&self, n: &str) -> Option<&Rel> {
        self.levels
            .iter()
            .rev()
            .flat_map(|l| l.iter())
            .find(|r| r.alias == n)
    }

    /// An unqualified name: a column of any visible relation (all of them: a name
    /// that is ambiguous to us is the union), or a whole-row reference.
    fn ident(&self, n: &str) -> Source {
        let mut s: Option<Source> = None;
        for rel in self.levels.iter().flat_map(|l| l.iter()) {
            let found = rel.column(n);
            let row = (rel.alias == n).then(|| rel.whole());
            for f in found.into_iter().chain(row) {
                match &mut s {
                    None => s = Some(f),
                    Some(x) => x.union(&f),
                }
            }
        }
        s.unwrap_or_else(|| Source::named(n))
    }

    fn qualified(&self, parts: &[String]) -> Source {
        match parts {
            [] => Source::default(),
            [one] => self.ident(one),
            [.., rel, col] => match self.rel(rel) {
                Some(r) => r.column(col).unwrap_or_else(|| r.whole()),
                // `schema.table.column`, a composite field, an outer name.
                None => {
                    let mut s = self.ident(col);
                    if let Some(r) = self.rel(col) {
                        s.union(&r.whole());
                    }
                    s
                }
            },
        }
    }
}

fn query(q: &Query, outer: &Scopes) -> Vec<Out> {
    let mut scopes = outer.clone();
    if let Some(w) = &q.with {
        for cte in &w.cte_tables {
            let name = cte.alias.name.value.to_lowercase();
            let mut inner = scopes.clone();
            if w.recursive {
                // Its own rows feed it: a reference to itself may be anything.
                inner.ctes.push(Rel {
                    alias: name.clone(),
                    kind: RelKind::Derived(vec![Out::Many(Rest::From(Source::opaque()))]),
                });
            }
            let items = rename(query(&cte.query, &inner), Some(&cte.alias));
            scopes.ctes.push(Rel {
                alias: name,
                kind: RelKind::Derived(items),
            });
        }
    }
    set_expr(&q.body, &scopes)
}

fn set_expr(body: &SetExpr, scopes: &Scopes) -> Vec<Out> {
    match body {
        SetExpr::Select(select) => {
            let mut rels = Vec::new();
            from(&select.from, scopes, &mut rels);
            let mut inner = scopes.with(rels);
            inner.merged = merges(&select.from);
            projection(&select.projection, &inner)
        }
        SetExpr::Query(q) => query(q, scopes),
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_expr(left, scopes);
            let r = set_expr(right, scopes);
            let fixed = |v: &[Out]| v.iter().all(|i| matches!(i, Out::One { .. }));
            if fixed(&l) && fixed(&r) && l.len() == r.len() {
                l.into_iter()
                    .zip(r)
                    .map(|(a, b)| match (a, b) {
                        (Out::One { name, mut src }, Out::One { src: s2, .. }) => {
                            src.union(&s2);
                            Out::One { name, src }
                        }
                        (a, _) => a,
                    })
                    .collect()
            } else {
                let mut s = whole(&l);
                s.union(&whole(&r));
                vec![Out::Many(Rest::From(s))]
            }
        }
        SetExpr::Values(v) => {
            let mut cols: Vec<Source> = Vec::new();
            for row in &v.rows {
                for (i, e) in row.iter().enumerate() {
                    let s = expr(e, scopes);
                    match cols.get_mut(i) {
                        Some(c) => c.union(&s),
                        None => cols.push(s),
                    }
                }
            }
            cols.into_iter()
                .enumerate()
                .map(|(i, src)| Out::One {
                    name: format!("column{}", i + 1),
                    src,
                })
                .collect()
        }
        SetExpr::Table(t) => {
            let n = t.table_name.as_deref().unwrap_or_default().to_lowercase();
            match scopes.cte(&n) {
                Some(c) if t.schema_name.is_none() => c.star(),
                _ => vec![Out::Many(Rest::NameBased)],
            }
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            match of(s) {
                Lineage::Rows(items) => items,
                _ => vec![Out::Many(Rest::From(Source::opaque()))],
            }
        }
    }
}

/// Whether a FROM list joins `USING (...)` or `NATURAL`, anywhere in it (a false
/// positive only makes `*` conservative).
fn merges(tables: &[TableWithJoins]) -> bool {
    tables.iter().any(|t| {
        t.joins.iter().any(|j| {
            let op = format!("{:?}", j.join_operator);
            op.contains("Using(") || op.contains("Natural")
        }) || matches!(&t.relation, TableFactor::NestedJoin { table_with_joins, .. }
            if merges(std::slice::from_ref(table_with_joins)))
    })
}

fn from(tables: &[TableWithJoins], scopes: &Scopes, rels: &mut Vec<Rel>) {
    for t in tables {
        table_factor(&t.relation, scopes, rels);
        for j in &t.joins {
            table_factor(&j.relation, scopes, rels);
        }
    }
}

fn table_factor(tf: &TableFactor, scopes: &Scopes, rels: &mut Vec<Rel>) {
    // LATERAL items see the relations before them.
    let visible = || scopes.with(rels.clone());
    match tf {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let n = object(name);
            let alias_name = alias
                .as_ref()
                .map_or_else(|| last(&n), |a| a.name.value.to_lowercase());
            let kind = match (name.0.len(), scopes.cte(&n)) {
                (1, Some(c)) => match &c.kind {
                    RelKind::Derived(items) => {
                        RelKind::Derived(rename(items.clone(), alias.as_ref()))
                    }
                    k => k.clone(),
                },
                _ => RelKind::Base(
                    alias
                        .as_ref()
                        .map(|a| {
                            a.columns
                                .iter()
                                .map(|c| c.name.value.to_lowercase())
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            };
            rels.push(Rel {
                alias: alias_name,
                kind,
            });
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let items = rename(query(subquery, &visible()), alias.as_ref());
            rels.push(Rel {
                alias: alias
                    .as_ref()
                    .map(|a| a.name.value.to_lowercase())
                    .unwrap_or_default(),
                kind: RelKind::Derived(items),
            });
        }
        TableFactor::NestedJoin {
            table_with_joins,
            alias,
        } => {
            let mut inner = Vec::new();
            from(std::slice::from_ref(table_with_joins), scopes, &mut inner);
            if let Some(a) = alias {
                let mut s = Source::default();
                for r in &inner {
                    s.union(&r.whole());
                }
                rels.push(Rel {
                    alias: a.name.value.to_lowercase(),
                    kind: RelKind::Derived(vec![Out::Many(Rest::From(s))]),
                });
            } else {
                rels.extend(inner);
            }
        }
        other => {
            // A table function, UNNEST, JSON_TABLE...: its columns derive from its
            // arguments, which we take as everything they mention; a function we
            // do not know may read any table.
            let v = visible();
            let mut s = Source::default();
            if let TableFactor::Table { name, .. } = other
                && !known_function(name)
            {
                s.opaque = true;
            }
            let _ = sqlparser::ast::visit_expressions(other, |e| {
                s.union(&expr(e, &v));
                ControlFlow::<()>::Continue(())
            });
            let alias = match other {
                TableFactor::Table { alias, name, .. } => alias
                    .as_ref()
                    .map_or_else(|| last(&object(name)), |a| a.name.value.to_lowercase()),
                TableFactor::UNNEST { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::TableFunction { alias, .. } => alias
                    .as_ref()
                    .map(|a| a.name.value.to_lowercase())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            rels.push(Rel {
                alias,
                kind: RelKind::Derived(vec![Out::Many(Rest::From(s))]),
            });
        }
    }
}

fn object(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| p.to_string().trim_matches('"').to_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

fn projection(items: &[SelectItem], scopes: &Scopes) -> Vec<Out> {
    let mut out = Vec::new();
    let here: &[Rel] = scopes.levels.last().map(Vec::as_slice).unwrap_or_default();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => out.push(Out::One {
                name: label(e),
                src: expr(e, scopes),
            }),
            SelectItem::ExprWithAlias { expr: e, alias } => out.push(Out::One {
                name: alias.value.to_lowercase(),
                src: expr(e, scopes),
            }),
            SelectItem::ExprWithAliases { expr: e, aliases } => {
                let src = expr(e, scopes);
                for a in aliases {
                    out.push(Out::One {
                        name: a.value.to_lowercase(),
                        src: Source {
                            direct: false,
                            ..src.clone()
                        },
                    });
                }
            }
            SelectItem::Wildcard(_) if scopes.merged => {
                let mut s = Source::default();
                for r in here {
                    s.union(&whole(&r.star()));
                }
                out.push(Out::Many(Rest::From(s)));
            }
            SelectItem::Wildcard(_) => {
                for r in here {
                    out.extend(r.star());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => match kind {
                SelectItemQualifiedWildcardKind::ObjectName(n) => {
                    match scopes.rel(&last(&object(n))) {
                        Some(r) => out.extend(r.star()),
                        None => out.push(Out::Many(Rest::From(Source::opaque()))),
                    }
                }
                SelectItemQualifiedWildcardKind::Expr(e) => {
                    let mut s = expr(e, scopes);
                    s.direct = false;
                    out.push(Out::Many(Rest::From(s)));
                }
            },
        }
    }
    out
}

/// PostgreSQL's label for a bare column reference (others do not matter here).
fn label(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(|p| p.value.to_lowercase())
            .unwrap_or_default(),
        Expr::Nested(e) => label(e),
        _ => String::new(),
    }
}

/// The sources of an expression's value.
fn expr(e: &Expr, scopes: &Scopes) -> Source {
    match e {
        Expr::Identifier(i) => return scopes.ident(&i.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => {
            let parts: Vec<String> = parts.iter().map(|p| p.value.to_lowercase()).collect();
            return scopes.qualified(&parts);
        }
        Expr::Nested(inner) => return expr(inner, scopes),
        _ => {}
    }
    let mut s = Source::default();
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        match x {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => s.union(&expr(x, scopes)),
            Expr::Wildcard(_) => {
                if let Some(l) = scopes.levels.last() {
                    for r in l {
                        s.union(&r.whole());
                    }
                }
            }
            Expr::QualifiedWildcard(n, _) => match scopes.rel(&last(&object(n))) {
                Some(r) => s.union(&r.whole()),
                None => s.opaque = true,
            },
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => {
                s.union(&whole(&query(q, scopes)));
            }
            Expr::InSubquery { subquery, .. } => s.union(&whole(&query(subquery, scopes))),
            Expr::Function(f) => {
                // A function we do not know may read any table (a SQL function, or
                // dynamic SQL such as `query_to_xml`).
                if !known_function(&f.name) {
                    s.opaque = true;
                }
                // `row_to_json(h.*)`, `count(h.*)`: the argument list's wildcards.
                if let sqlparser::ast::FunctionArguments::List(l) = &f.args {
                    for a in &l.args {
                        let (sqlparser::ast::FunctionArg::Unnamed(a)
                        | sqlparser::ast::FunctionArg::Named { arg: a, .. }
                        | sqlparser::ast::FunctionArg::ExprNamed { arg: a, .. }) = a;
                        match a {
                            FunctionArgExpr::QualifiedWildcard(n) => {
                                match scopes.rel(&last(&object(n))) {
                                    Some(r) => s.union(&r.whole()),
                                    None => s.opaque = true,
                                }
                            }
                            FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_) => {
                            }
                            FunctionArgExpr::Expr(_) => {}
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    s.direct = false;
    s
}

#[cfg(test)]
mod tests;
