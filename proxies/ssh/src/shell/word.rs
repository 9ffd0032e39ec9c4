//! Static evaluation of shell words: quote removal, ANSI-C `$'…'` decoding, brace
//! expansion, backslash escapes, variables assigned earlier on the same line. What
//! cannot be known before the command runs (other parameters, command substitution,
//! arithmetic, globs) makes the word dynamic, with the reason.

use std::collections::{HashMap, HashSet};

use brush_parser::ParserOptions;
use brush_parser::word::{
    self, BraceExpressionMember, BraceExpressionOrText, Parameter, ParameterExpr,
    ParameterTestType, ParameterTransformOp, TildeExpr, WordPiece, WordPieceWithSource,
};

/// Most words one brace expansion may produce.
const MAX_BRACE_WORDS: usize = 256;

/// What a variable holds, as far as the line shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// Assigned this text (or unset: the empty text) for certain.
    Known(String),
    /// Assigned something that cannot be known, or maybe assigned.
    Unknown,
}

/// The variables a line has assigned so far. A name not in the map comes from the
/// environment and is unknown.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    known: HashMap<String, Var>,
    /// False once a command that may assign any variable ran (`read`, `eval`, ...).
    trusted: bool,
    /// Names last assigned by arithmetic (`(( i = 0 ))`, `i++`): they hold integers,
    /// which arithmetic can evaluate without running anything.
    integers: HashSet<String>,
}

impl Vars {
    pub fn new() -> Self {
        Self {
            known: HashMap::new(),
            trusted: true,
            integers: HashSet::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        if !self.trusted {
            return None;
        }
        match self.known.get(name) {
            Some(Var::Known(v)) => Some(v),
            _ => None,
        }
    }

    pub fn set(&mut self, name: &str, value: Var) {
        self.integers.remove(name);
        self.known.insert(name.to_owned(), value);
    }

    /// Forget everything: any variable may have changed.
    pub fn distrust(&mut self) {
        self.trusted = false;
        self.integers.clear();
    }

    /// `name` was assigned by arithmetic: it holds an integer.
    pub fn set_integer(&mut self, name: &str) {
        self.integers.insert(name.to_owned());
    }

    /// Whether anything may have changed since `before`.
    pub fn differs(&self, before: &Vars) -> bool {
        self.trusted != before.trusted
            || self.known != before.known
            || self.integers != before.integers
    }

    /// After code that may run again (a loop body) or at any later point (a function
    /// body): every variable it assigned (`after` differs from `self` there) may hold
    /// any of its values, so it is unknown.
    pub fn forget_changed(&mut self, after: &Vars) {
        // A name holds an integer afterwards if it did before (or held a value
        // arithmetic evaluates without running anything) and the code left one in it.
        let integers: HashSet<String> = after
            .integers
            .iter()
            .filter(|n| self.integer_safe(n))
            .cloned()
            .collect();
        if !after.trusted {
            self.distrust();
        }
        for (name, v) in &after.known {
            if self.known.get(name) != Some(v) {
                self.known.insert(name.clone(), Var::Unknown);
            }
        }
        self.integers = integers;
    }

    /// Whether arithmetic on `name` runs nothing: it holds an integer, or a value
    /// that arithmetic evaluates without running anything.
    pub fn integer_safe(&self, name: &str) -> bool {
        name_unknown(name, self, 0).is_none()
    }
}

/// A word after static evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The fields the word expands to (none for an unquoted empty expansion).
    Fields(Vec<String>),
    /// Not known before it runs: why, and the word as written.
    Dynamic { reason: String, raw: String },
}

/// One argument of a command after evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The text (the word as written when not static).
    pub text: String,
    /// Why the text is not known, when it is not.
    pub dynamic: Option<String>,
}

impl Arg {
    pub fn known(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            dynamic: None,
        }
    }
}

/// Command substitutions met while evaluating words: their text is run too.
pub type Substitutions = Vec<String>;

/// Evaluates one word as written in the source.
pub fn evaluate(raw: &str, vars: &Vars, subs: &mut Substitutions) -> Value {
    let options = ParserOptions::default();
    let mut words = vec![raw.to_owned()];
    if has_unquoted(raw, '{') {
        // brush-parser's brace grammar backtracks exponentially on many or unclosed
        // braces (found by fuzzing): such words are not expanded, and not guessed.
        if !braces_tractable(raw) {
            return Value::Dynamic {
                reason: format!(
                    "`{}` has too many or unbalanced braces to expand",
                    short(raw)
                ),
                raw: raw.to_owned(),
            };
        }
        match word::parse_brace_expansions(raw, &options) {
            Ok(Some(items)) => {
                let mut out = vec![String::new()];
                if !expand_braces(&items, &mut out) {
                    return Value::Dynamic {
                        reason: format!("brace expansion of `{raw}` is too large"),
                        raw: raw.to_owned(),
                    };
                }
                words = out;
            }
            Ok(None) => {}
            Err(_) => {
                return Value::Dynamic {
                    reason: format!("`{raw}` does not parse as a word"),
                    raw: raw.to_owned(),
                };
            }
        }
    }
    let mut fields = Vec::new();
    let mut dynamic: Option<String> = None;
    for w in &words {
        let pieces = match word::parse(w, &options) {
            Ok(p) => p,
            Err(_) => {
                return Value::Dynamic {
                    reason: format!("`{raw}` does not parse as a word"),
                    raw: raw.to_owned(),
                };
            }
        };
        let mut b = Builder::default();
        if let Err(reason) = pieces_into(&pieces, false, vars, subs, &mut b) {
            dynamic.get_or_insert(reason);
        }
        b.finish();
        if b.glob {
            dynamic.get_or_insert(format!("`{raw}` is a glob pattern"));
        }
        fields.extend(b.fields);
    }
    match dynamic {
        Some(reason) => Value::Dynamic {
            reason,
            raw: raw.to_owned(),
        },
        None => Value::Fields(fields),
    }
}

/// Evaluates the value of an assignment (`name=value`: no field splitting, no
/// globbing); `None` when it is not known.
pub fn evaluate_assignment(raw: &str, vars: &Vars, subs: &mut Substitutions) -> Option<String> {
    let pieces = word::parse(raw, &ParserOptions::default()).ok()?;
    let mut b = Builder {
        nosplit: true,
        ..Builder::default()
    };
    pieces_into(&pieces, false, vars, subs, &mut b).ok()?;
    Some(b.cur)
}

/// Evaluates a here-document body that undergoes expansion.
pub fn evaluate_heredoc(body: &str, vars: &Vars, subs: &mut Substitutions) -> Option<String> {
    let pieces = word::parse_heredoc(body, &ParserOptions::default()).ok()?;
    let mut b = Builder::default();
    pieces_into(&pieces, true, vars, subs, &mut b).ok()?;
    Some(b.cur)
}

/// A here-document body with more than three `$(`: brush-parser's word parser
/// backtracks exponentially on unclosed ones (found by fuzzing: five unclosed `$((`
/// took 4 s, six 49 s), and no linear scan tells soundly which are closed (quotes count
/// inside `$(…)`, not outside). Such a body is not evaluated: its commands are unknown,
/// which makes the line dynamic.
pub fn too_many_substitutions(body: &str) -> bool {
    body.matches("$(").count() > 3
}

/// Evaluates words as arguments: static fields, or one dynamic argument per word.
pub fn arguments<'a>(
    raws: impl IntoIterator<Item = &'a str>,
    vars: &Vars,
    subs: &mut Substitutions,
) -> Vec<Arg> {
    let mut out = Vec::new();
    for raw in raws {
        match evaluate(raw, vars, subs) {
            Value::Fields(f) => out.extend(f.into_iter().map(Arg::known)),
            Value::Dynamic { reason, raw } => out.push(Arg {
                text: raw,
                dynamic: Some(reason),
            }),
        }
    }
    out
}

#[derive(Default)]
struct Builder {
    fields: Vec<String>,
    cur: String,
    /// The current field exists even if empty (it holds quoted text).
    has: bool,
    /// Unquoted glob characters in the word.
    glob: bool,
    /// An assignment value: expansions are not split.
    nosplit: bool,
}

impl Builder {
    fn push(&mut self, s: &str) {
        self.cur.push_str(s);
        self.has = true;
    }

    fn split(&mut self) {
        if self.has || !self.cur.is_empty() {
            self.fields.push(std::mem::take(&mut self.cur));
        }
        self.has = false;
    }

    fn finish(&mut self) {
        self.split();
    }

    /// An unquoted expansion: split on blanks (the default `IFS`).
    fn push_split(&mut self, s: &str) {
        if self.nosplit {
            self.push(s);
            return;
        }
        let blank = |c: char| matches!(c, ' ' | '\t' | '\n');
        let parts: Vec<&str> = s.split(blank).filter(|p| !p.is_empty()).collect();
        if s.starts_with(blank) {
            self.split();
        }
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.split();
            }
            self.push(p);
        }
        if s.ends_with(blank) && !parts.is_empty() {
            self.split();
        }
    }
}

/// Whether unquoted `t` is a pattern: `*`, `?`, or a `[` closed later.
fn is_glob(t: &str) -> bool {
    t.contains(['*', '?'])
        || t.find('[')
            .is_some_and(|i| t.get(i + 1..).is_some_and(|r| r.contains(']')))
}

/// Most unquoted `{` in a word whose braces are expanded, and their deepest nesting.
const MAX_BRACES: usize = 16;
const MAX_BRACE_DEPTH: usize = 4;

/// The characters of `raw` outside quotes and escapes.
fn unquoted(raw: &str) -> impl Iterator<Item = char> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    raw.chars().filter(move |&c| {
        if escaped {
            escaped = false;
            return false;
        }
        match (quote, c) {
            (q, '\\') if q != Some('\'') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, _) => return true,
            _ => {}
        }
        false
    })
}

/// Whether the unquoted braces of `raw` are few, shallow and balanced.
fn braces_tractable(raw: &str) -> bool {
    let (mut open, mut depth, mut max) = (0usize, 0usize, 0usize);
    for c in unquoted(raw) {
        match c {
            '{' => {
                open += 1;
                depth += 1;
                max = max.max(depth);
            }
            '}' if depth == 0 => return false,
            '}' => depth -= 1,
            _ => {}
        }
    }
    depth == 0 && open <= MAX_BRACES && max <= MAX_BRACE_DEPTH
}

fn has_unquoted(raw: &str, wanted: char) -> bool {
    unquoted(raw).any(|c| c == wanted)
}

/// Appends the expansions of `items` to every prefix in `out`; false when too large.
fn expand_braces(items: &[BraceExpressionOrText], out: &mut Vec<String>) -> bool {
    for item in items {
        match item {
            BraceExpressionOrText::Text(t) => {
                for o in out.iter_mut() {
                    o.push_str(t);
                }
            }
            BraceExpressionOrText::Expr(members) => {
                let mut alternatives: Vec<String> = Vec::new();
                for m in members {
                    match m {
                        BraceExpressionMember::Child(children) => {
                            let mut sub = vec![String::new()];
                            if !expand_braces(children, &mut sub) {
                                return false;
                            }
                            alternatives.extend(sub);
                        }
                        BraceExpressionMember::NumberSequence {
                            start,
                            end,
                            increment,
                        } => {
                            let step = increment.unsigned_abs().max(1);
                            let (lo, hi) = (*start.min(end), *start.max(end));
                            let count = hi.abs_diff(lo) / step + 1;
                            if count > MAX_BRACE_WORDS as u64 {
                                return false;
                            }
                            let mut v = Vec::new();
                            let mut x = lo;
                            while x <= hi {
                                v.push(x.to_string());
                                x = match x.checked_add_unsigned(step) {
                                    Some(n) => n,
                                    None => break,
                                };
                            }
                            if start > end {
                                v.reverse();
                            }
                            alternatives.extend(v);
                        }
                        BraceExpressionMember::CharSequence {
                            start,
                            end,
                            increment,
                        } => {
                            let step = usize::try_from(increment.unsigned_abs().max(1))
                                .unwrap_or(usize::MAX);
                            let (lo, hi) = (u32::from(*start.min(end)), u32::from(*start.max(end)));
                            let mut v: Vec<String> = (lo..=hi)
                                .step_by(step)
                                .filter_map(char::from_u32)
                                .map(String::from)
                                .collect();
                            if start > end {
                                v.reverse();
                            }
                            alternatives.extend(v);
                        }
                    }
                }
                if out.len().saturating_mul(alternatives.len().max(1)) > MAX_BRACE_WORDS {
                    return false;
                }
                let mut next = Vec::with_capacity(out.len() * alternatives.len());
                for o in out.iter() {
                    for a in &alternatives {
                        next.push(format!("{o}{a}"));
                    }
                }
                *out = next;
            }
        }
    }
    true
}

fn pieces_into(
    pieces: &[WordPieceWithSource],
    quoted: bool,
    vars: &Vars,
    subs: &mut Substitutions,
    b: &mut Builder,
) -> Result<(), String> {
    let mut result = Ok(());
    for p in pieces {
        let r = piece_into(&p.piece, quoted, vars, subs, b);
        if result.is_ok() {
            result = r;
        }
    }
    result
}

fn piece_into(
    piece: &WordPiece,
    quoted: bool,
    vars: &Vars,
    subs: &mut Substitutions,
    b: &mut Builder,
) -> Result<(), String> {
    match piece {
        WordPiece::Text(t) => {
            if !quoted && is_glob(t) {
                b.glob = true;
            }
            b.push(t);
            Ok(())
        }
        WordPiece::SingleQuotedText(t) => {
            b.push(t);
            Ok(())
        }
        WordPiece::AnsiCQuotedText(t) => {
            b.push(&ansi_c(t));
            Ok(())
        }
        WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
            b.has = true;
            pieces_into(inner, true, vars, subs, b)
        }
        WordPiece::TildeExpansion(t) => {
            b.push(&match t {
                TildeExpr::Home => "~".to_owned(),
                TildeExpr::UserHome(u) => format!("~{u}"),
                TildeExpr::WorkingDir => "~+".to_owned(),
                TildeExpr::OldWorkingDir => "~-".to_owned(),
                _ => "~?".to_owned(),
            });
            Ok(())
        }
        WordPiece::EscapeSequence(s) => {
            let c: String = s.chars().skip(1).collect();
            if quoted && !matches!(c.as_str(), "$" | "`" | "\"" | "\\" | "\n") {
                b.push(s);
            } else if c != "\n" {
                b.push(&c);
            }
            Ok(())
        }
        WordPiece::ParameterExpansion(expr) => match parameter(expr, vars, subs) {
            Ok(v) => {
                if quoted {
                    b.push(&v);
                } else {
                    if is_glob(&v) {
                        b.glob = true;
                    }
                    b.push_split(&v);
                }
                Ok(())
            }
            Err(reason) => {
                b.push("${…}");
                Err(reason)
            }
        },
        WordPiece::CommandSubstitution(text) => {
            subs.push(text.clone());
            b.push("$(…)");
            Err(format!("command substitution `$({})`", short(text)))
        }
        WordPiece::BackquotedCommandSubstitution(text) => {
            let inner = unescape_backquoted(text);
            let reason = format!("command substitution `{}`", short(&inner));
            subs.push(inner);
            b.push("`…`");
            Err(reason)
        }
        WordPiece::ArithmeticExpression(expr) => {
            arithmetic(&expr.value, vars, subs);
            // `$(( $(cmd) ))`: substitutions inside run too.
            if let Ok(inner) = word::parse(&expr.value, &ParserOptions::default()) {
                let mut scratch = Builder::default();
                let _ = pieces_into(&inner, true, vars, subs, &mut scratch);
            }
            b.push("$((…))");
            Err(format!(
                "arithmetic expansion `$(({}))`",
                short(&expr.value)
            ))
        }
    }
}

/// The value of a parameter expansion, when the line shows it.
fn parameter(
    expr: &ParameterExpr,
    vars: &Vars,
    subs: &mut Substitutions,
) -> Result<String, String> {
    let named = |p: &Parameter| match p {
        Parameter::Named(n) => Some(n.clone()),
        _ => None,
    };
    // Whatever the value, substitutions in the operands (`${x:-$(cmd)}`,
    // `${a[$(cmd)]}`, `${x/$(cmd)/}`, `${x:$(cmd)}`) may run: they are judged.
    let texts = operands(expr);
    for operand in &texts.0 {
        if let Ok(pieces) = word::parse(operand, &ParserOptions::default()) {
            let _ = pieces_into(&pieces, true, vars, subs, &mut Builder::default());
        }
    }
    for text in arithmetic_operands(expr, &texts) {
        arithmetic(text, vars, subs);
    }
    if let ParameterExpr::Transform {
        parameter,
        op: ParameterTransformOp::PromptExpand,
        ..
    } = expr
    {
        // `${x@P}` expands the value as a prompt: its substitutions run.
        let code = match named(parameter).and_then(|n| vars.get(&n).map(str::to_owned)) {
            Some(v) => format!("echo \"{v}\""),
            None => "eval \"$__gatehouse_unknown\"".to_owned(),
        };
        subs.push(code);
        return Err("a prompt expansion (`${…@P}`)".to_owned());
    }
    // The operands' substitutions are recorded above; evaluating a default value
    // below must not record them twice.
    let mut scratch = Substitutions::new();
    let subs = &mut scratch;
    match expr {
        ParameterExpr::Parameter {
            parameter,
            indirect: false,
        } => {
            let name = named(parameter).ok_or_else(|| describe(parameter))?;
            vars.get(&name)
                .map(str::to_owned)
                .ok_or_else(|| format!("`${name}` is not known before the command runs"))
        }
        ParameterExpr::UseDefaultValues {
            parameter,
            indirect: false,
            test_type,
            default_value,
        } => {
            let name = named(parameter).ok_or_else(|| describe(parameter))?;
            let value = vars
                .get(&name)
                .ok_or_else(|| format!("`${name}` is not known before the command runs"))?;
            let use_default = match test_type {
                ParameterTestType::UnsetOrNull => value.is_empty(),
                // A known variable is set (possibly to the empty text).
                ParameterTestType::Unset => false,
            };
            if !use_default {
                return Ok(value.to_owned());
            }
            let default = default_value.clone().unwrap_or_default();
            match evaluate(&format!("\"{default}\""), vars, subs) {
                Value::Fields(f) => Ok(f.join(" ")),
                Value::Dynamic { reason, .. } => Err(reason),
            }
        }
        _ => Err("a parameter expansion with an operator is not evaluated".to_owned()),
    }
}

/// The texts inside a parameter expansion that the shell evaluates as arithmetic: a
/// substring's offset and length, and an array index (the last of [`operands`]).
fn arithmetic_operands<'e>(
    expr: &'e ParameterExpr,
    (operands, indexed): &(Vec<&'e str>, bool),
) -> Vec<&'e str> {
    let mut out: Vec<&str> = Vec::new();
    if let ParameterExpr::Substring { offset, length, .. } = expr {
        out.push(&offset.value);
        out.extend(length.as_ref().map(|l| l.value.as_str()));
    }
    if *indexed {
        out.extend(operands.last());
    }
    out
}

/// Marks a concern about arithmetic in `subs`: the walker reports an entry that
/// starts with this character as a reason the line is dynamic, not as code to run.
pub const CONCERN: char = '\0';

/// Text the shell evaluates as arithmetic (`$((…))`, `((…))`, an index, a
/// substring's offset, `let`, `[[ a -eq b ]]`). Evaluating a name evaluates its value
/// as arithmetic in turn, and a value like `a[$(cmd)]` runs `cmd`: a name whose value
/// the line does not show (from the environment, an earlier line, `read`, a file), or
/// the output of a command, may run code the line does not name. Such text is marked
/// in `subs` (see [`CONCERN`]).
pub fn arithmetic(text: &str, vars: &Vars, subs: &mut Substitutions) {
    if let Some(reason) = arithmetic_unknown(text, vars, 0) {
        subs.push(format!("{CONCERN}{reason}"));
    }
}

/// Names that arithmetic text assigns (`i = 0`, `i += 2`, `i++`, `--i`); not array
/// elements.
pub fn assigned_in_arithmetic(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if (c.is_ascii_alphabetic() || c == b'_')
            && (i == 0 || !b.get(i - 1).is_some_and(|p| ident(*p) || *p == b'$'))
        {
            let n = ident_len(b, i);
            let name = text.get(i..i + n).unwrap_or_default();
            let after = text.get(i + n..).unwrap_or_default().trim_start();
            let before = text.get(..i).unwrap_or_default().trim_end();
            let assigns = (after.starts_with('=') && !after.starts_with("=="))
                || [
                    "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|=", "++", "--",
                ]
                .iter()
                .any(|op| after.starts_with(op))
                || before.ends_with("++")
                || before.ends_with("--");
            if assigns && !out.iter().any(|o| o == name) {
                out.push(name.to_owned());
            }
            i += n;
        } else {
            i += 1;
        }
    }
    out
}

/// The length of the name (letters, digits, `_`) starting at byte `i` of `b`.
fn ident_len(b: &[u8], i: usize) -> usize {
    b.get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// Names whose value is always an integer.
const INTEGER_SPECIALS: &[&str] = &[
    "RANDOM",
    "SRANDOM",
    "SECONDS",
    "LINENO",
    "BASHPID",
    "PPID",
    "UID",
    "EUID",
    "EPOCHSECONDS",
];

fn arithmetic_unknown(text: &str, vars: &Vars, depth: usize) -> Option<String> {
    if depth > 8 {
        return Some(format!(
            "arithmetic on values that name each other more than 8 deep (`{}`)",
            short(text)
        ));
    }
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'`' => {
                return Some(format!(
                    "the output of a command is evaluated as arithmetic (`{}`)",
                    short(text)
                ));
            }
            b'$' => match b.get(i + 1) {
                Some(b'(') if b.get(i + 2) == Some(&b'(') => i += 3,
                Some(b'[') => i += 2,
                Some(b'(') => {
                    let end = closing(b, i + 1, b'(', b')');
                    let inner = text.get(i + 2..end).unwrap_or_default();
                    if !numeric_output(inner) {
                        return Some(format!(
                            "the output of `$({})` is evaluated as arithmetic",
                            short(inner)
                        ));
                    }
                    i = end + 1;
                }
                Some(b'{') => {
                    let end = closing(b, i + 1, b'{', b'}');
                    let inner = text.get(i + 2..end).unwrap_or_default();
                    let n = ident_len(inner.as_bytes(), 0);
                    let name = inner.get(..n).unwrap_or_default();
                    let rest = inner.get(n..).unwrap_or_default();
                    if let Some(len) = inner.strip_prefix('#') {
                        // A length is an integer; its index is arithmetic.
                        if let Some(r) = len.find('[').and_then(|s| {
                            arithmetic_unknown(len.get(s..).unwrap_or_default(), vars, depth + 1)
                        }) {
                            return Some(r);
                        }
                    } else if n == 0 || !rest.is_empty() {
                        return Some(format!(
                            "`${{{}}}` is evaluated as arithmetic and its value is not known",
                            short(inner)
                        ));
                    } else if let Some(r) = name_unknown(name, vars, depth) {
                        return Some(r);
                    }
                    i = end + 1;
                }
                Some(&c) if c.is_ascii_alphabetic() || c == b'_' => {
                    let n = ident_len(b, i + 1);
                    let name = text.get(i + 1..i + 1 + n).unwrap_or_default();
                    if let Some(r) = name_unknown(name, vars, depth) {
                        return Some(r);
                    }
                    i += 1 + n;
                }
                Some(b'#' | b'?' | b'$' | b'!') => i += 2,
                Some(c) if c.is_ascii_digit() => {
                    return Some(format!(
                        "a positional parameter is evaluated as arithmetic (`{}`)",
                        short(text)
                    ));
                }
                _ => i += 1,
            },
            c if c.is_ascii_digit() => {
                // Numbers, also `0x1f` and `16#ff`.
                while b
                    .get(i)
                    .is_some_and(|c| ident(*c) || *c == b'#' || *c == b'@')
                {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let n = ident_len(b, i);
                let name = text.get(i..i + n).unwrap_or_default();
                let after = b.get(i + n..).unwrap_or_default();
                if after.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[') {
                    return Some(format!(
                        "an array element `{name}[…]` is evaluated as arithmetic and its value is not known"
                    ));
                }
                // `i = …` does not read `i` (`i += …` does).
                let rest = std::str::from_utf8(after).unwrap_or_default().trim_start();
                let target = rest.starts_with('=') && !rest.starts_with("==");
                if !target && let Some(r) = name_unknown(name, vars, depth) {
                    return Some(r);
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether an assignment's value (as written) is an integer whatever the host holds:
/// `$((…))`, or `$(…)` of a command whose output is a number (see `numeric_output`).
pub fn integer_value(raw: &str) -> bool {
    let v = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if let Some(inner) = v.strip_prefix("$((").and_then(|r| r.strip_suffix("))")) {
        return !inner.contains("))");
    }
    v.strip_prefix("$(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|code| !code.contains(')') && numeric_output(code))
}

/// Why evaluating `name` as arithmetic may run code: its value is not known, or the
/// value (evaluated in turn) may.
fn name_unknown(name: &str, vars: &Vars, depth: usize) -> Option<String> {
    if INTEGER_SPECIALS.contains(&name) || vars.integers.contains(name) {
        return None;
    }
    match vars.get(name) {
        Some(v) => arithmetic_unknown(v, vars, depth + 1),
        None => Some(format!(
            "`{name}` is evaluated as arithmetic and its value is not known (`a[$(cmd)]` in it would run `cmd`)"
        )),
    }
}

/// The index of the bracket closing the one at `open` (or the end of the text).
fn closing(b: &[u8], open: usize, o: u8, c: u8) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&x) = b.get(i) {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
        i += 1;
    }
    b.len()
}

/// Command text whose output is a number whatever the host holds: `nproc`,
/// `id -u`/`-g`, `date +%s`, `wc -l`/`-c`/`-w`/`-m` reading its input (last in a
/// pipeline); a file name in `wc`'s output would be read as a name.
fn numeric_output(code: &str) -> bool {
    // One pipeline without substitutions, lists or output redirections.
    if code.contains(['$', '`', ';', '&', '>', '(']) {
        return false;
    }
    let last = code.rsplit('|').next().unwrap_or_default();
    let words: Vec<&str> = last.split_whitespace().collect();
    let Some((first, args)) = words.split_first() else {
        return false;
    };
    match *first {
        "nproc" => args.iter().all(|a| a.starts_with("--")),
        "id" => matches!(args, ["-u" | "-g" | "-ur" | "-gr" | "-ru" | "-rg"]),
        "date" => matches!(
            args,
            ["+%s" | "+%s%N" | "+%N" | "+%Y"] | ["-u", "+%s" | "+%Y"]
        ),
        "wc" => {
            // Input from the pipeline or a redirection: only the count is printed.
            let (opts, redirect): (Vec<&&str>, Vec<&&str>) =
                args.iter().partition(|a| a.starts_with('-'));
            !opts.is_empty()
                && opts
                    .iter()
                    .all(|a| matches!(**a, "-l" | "-c" | "-w" | "-m"))
                && (redirect.is_empty()
                    || (redirect.first().is_some_and(|r| **r == "<") && redirect.len() == 2))
        }
        _ => false,
    }
}

/// The texts inside a parameter expansion that the shell expands: operands and
/// array indices.
/// Also whether the last one is an array index.
fn operands(expr: &ParameterExpr) -> (Vec<&str>, bool) {
    use ParameterExpr as E;
    let mut out: Vec<&str> = Vec::new();
    let parameter = match expr {
        E::Parameter { parameter, .. }
        | E::ParameterLength { parameter, .. }
        | E::Transform { parameter, .. } => parameter,
        E::UseDefaultValues {
            parameter,
            default_value: v,
            ..
        }
        | E::AssignDefaultValues {
            parameter,
            default_value: v,
            ..
        }
        | E::IndicateErrorIfNullOrUnset {
            parameter,
            error_message: v,
            ..
        }
        | E::UseAlternativeValue {
            parameter,
            alternative_value: v,
            ..
        }
        | E::RemoveSmallestSuffixPattern {
            parameter,
            pattern: v,
            ..
        }
        | E::RemoveLargestSuffixPattern {
            parameter,
            pattern: v,
            ..
        }
        | E::RemoveSmallestPrefixPattern {
            parameter,
            pattern: v,
            ..
        }
        | E::RemoveLargestPrefixPattern {
            parameter,
            pattern: v,
            ..
        }
        | E::UppercaseFirstChar {
            parameter,
            pattern: v,
            ..
        }
        | E::UppercasePattern {
            parameter,
            pattern: v,
            ..
        }
        | E::LowercaseFirstChar {
            parameter,
            pattern: v,
            ..
        }
        | E::LowercasePattern {
            parameter,
            pattern: v,
            ..
        } => {
            out.extend(v.as_deref());
            parameter
        }
        E::Substring {
            parameter,
            offset,
            length,
            ..
        } => {
            out.push(&offset.value);
            out.extend(length.as_ref().map(|l| l.value.as_str()));
            parameter
        }
        E::ReplaceSubstring {
            parameter,
            pattern,
            replacement,
            ..
        } => {
            out.push(pattern);
            out.extend(replacement.as_deref());
            parameter
        }
        E::VariableNames { .. } | E::MemberKeys { .. } => return (out, false),
    };
    if let Parameter::NamedWithIndex { index, .. } = parameter {
        out.push(index);
        return (out, true);
    }
    (out, false)
}

fn describe(p: &Parameter) -> String {
    match p {
        Parameter::Positional(n) => format!("positional parameter `${n}`"),
        Parameter::Special(_) => "a special parameter (`$@`, `$*`, `$?`, ...)".to_owned(),
        Parameter::NamedWithIndex { name, .. } | Parameter::NamedWithAllIndices { name, .. } => {
            format!("array `${name}[…]`")
        }
        Parameter::Named(n) => format!("`${n}`"),
    }
}

/// Decodes the body of `$'…'` as bash does.
pub fn ansi_c(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'e' | 'E' => out.push('\x1b'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' | '\'' | '"' | '?' => out.push(e),
            'c' => {
                if let Some(x) = chars.next() {
                    out.push(char::from(u8::try_from(u32::from(x) & 0x1f).unwrap_or(0)));
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                push_code(&mut out, v & 0xff);
            }
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v = 0u32;
                let mut n = 0;
                while n < max {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v.wrapping_mul(16).wrapping_add(d);
                            chars.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    out.push('\\');
                    out.push(e);
                } else if e == 'x' {
                    push_code(&mut out, v);
                } else {
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// A byte value from `\NNN` / `\xHH`: ASCII as itself, others as the Latin-1 char
/// (a command name made of such bytes is compared as text anyway).
fn push_code(out: &mut String, v: u32) {
    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
}

fn unescape_backquoted(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '\\' | '`' | '$')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// At most 60 characters of `s`, for reasons.
pub fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 60 {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(57).collect();
    t.push('…');
    t
}
