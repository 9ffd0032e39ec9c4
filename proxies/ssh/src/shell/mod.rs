//! What an SSH command line will run, from a real shell grammar (`brush-parser`,
//! [ADR 0016](../../../../docs/adr/0016-shell-grammar-brush-parser.md)).
//!
//! Every simple command of every construct is found (pipelines, lists, subshells,
//! command and process substitution, arithmetic, function bodies, here-documents,
//! `case`, loops and conditionals) and its words evaluated statically: quotes removed,
//! `$'…'` decoded, braces expanded, variables assigned earlier on the same line
//! followed. Wrappers (`sudo`, `env -S`, `timeout`, `xargs`, `find -exec`, ...) are
//! unwrapped by their option grammars; shell code given to a shell (`sh -c`, `su -c`,
//! `watch`, `eval` of static text, static here-documents fed to a shell) is parsed
//! recursively. What cannot be known before the command runs is not guessed: it is
//! reported in [`Classified::dynamic`], inline code of other languages in
//! [`Classified::inline_code`], code arriving as data in [`Classified::fed_code`], so
//! that a policy can hold or block it.

mod run;
#[cfg(test)]
mod tests;
mod word;

use brush_parser::ast::{self, Command, CompoundCommand, IoFileRedirectKind, IoRedirect};
use brush_parser::{Parser, ParserOptions};

use word::{Arg, Substitutions, Var, Vars};

/// Variables whose value changes which program a name runs, what a program loads, or
/// how the shell splits words.
const RISKY_VARIABLES: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "BASH_LOADABLES_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
];

/// Longest command line judged. A longer one is refused whole, never judged in part.
pub const MAX_LEN: usize = 256 * 1024;
/// How deep nested code (`sh -c "$(…)"`, `eval`, `bash <<EOF`) is followed.
const MAX_DEPTH: usize = 12;
/// Most brackets open at once in a line: deeper input is not parsed (the parser
/// recurses per level).
const MAX_NESTING: usize = 200;
/// Most simple commands looked at in one line (across all nesting).
const MAX_COMMANDS: usize = 20_000;

/// Where the judged text comes from: it decides what a shell or interpreter started
/// without code reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An exec request: the program's stdin is the channel's data, which is not judged.
    Exec,
    /// A line typed at (or fed to) a shell the gateway judges line by line: a nested
    /// shell's input is judged the same way.
    ShellLine,
}

/// A classified command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classified {
    /// The first simple command after evaluation (redirections appended as written).
    pub argv: Vec<String>,
    /// Basename of `argv[0]`.
    pub program: Option<String>,
    /// Every program the line runs, in order of appearance, without duplicates.
    pub programs: Vec<String>,
    /// Every simple command, evaluated, one per entry (words joined by spaces).
    pub commands: Vec<String>,
    /// Why what the line runs is not known before it runs (the first reason).
    pub dynamic: Option<String>,
    /// Languages of code given inline to an interpreter (`python -c`, `perl -e`, ...).
    pub inline_code: Vec<String>,
    /// Code a shell or interpreter reads as data (a pipe, a file, the channel's input).
    pub fed_code: Option<String>,
    /// Script files a shell or interpreter runs (including `source`).
    pub scripts: Vec<String>,
    /// Every redirection target (read or written), as evaluated.
    pub redirects: Vec<String>,
    /// Files the line writes (redirections, `tee`, `dd of=`, `cp`/`mv`/`install`/`ln`
    /// destinations), relative paths resolved against the `cd`s before them (`~` is
    /// the starting directory of an exec).
    pub writes: Vec<String>,
    /// URLs among the arguments (`scheme://…`): network access by any program.
    pub urls: Vec<String>,
    /// Programs run by a path (`./k`, `/tmp/x`), as written.
    pub paths_run: Vec<String>,
    /// Set when the line does not parse or is over the size limit: the line is then
    /// not known at all.
    pub parse_error: Option<String>,
    /// The line is over [`MAX_LEN`]: it must be refused whatever the policy says.
    pub too_long: bool,
    /// Protocols the line's programs speak to other systems from the host — a pivot
    /// past the gateway: `postgres` (psql, pg_dump, ...), `mysql`, `mongodb`, `redis`,
    /// `kubernetes` (kubectl, helm, ..., or an HTTP client given a Kubernetes API URL),
    /// `ssh` (ssh, scp, sftp, rsync to a remote).
    pub pivot: Vec<String>,
    /// The line is only `scp -t DEST` reading the channel (an exec): the gateway reads
    /// the file names in its stream and judges each against this destination (resolved
    /// like `writes`; `None` when the line names none).
    pub scp_sink: Option<Option<String>>,
}

/// How far a walk had filled a [`Classified`] (see [`Classified::reset`]).
#[derive(Debug, Clone)]
pub(crate) struct OutMark {
    lens: [usize; 8],
    argv: usize,
    dynamic: bool,
    fed_code: bool,
    parse_error: bool,
}

impl Classified {
    fn lists(&mut self) -> [&mut Vec<String>; 8] {
        [
            &mut self.programs,
            &mut self.commands,
            &mut self.inline_code,
            &mut self.scripts,
            &mut self.redirects,
            &mut self.writes,
            &mut self.urls,
            &mut self.paths_run,
        ]
    }

    /// Where the walk is now.
    pub(crate) fn mark(&mut self) -> OutMark {
        let argv = self.argv.len();
        let (dynamic, fed_code, parse_error) = (
            self.dynamic.is_some(),
            self.fed_code.is_some(),
            self.parse_error.is_some(),
        );
        OutMark {
            lens: self.lists().map(|l| l.len()),
            argv,
            dynamic,
            fed_code,
            parse_error,
        }
    }

    /// Takes back what was added since `mark`: lists are only appended to (without
    /// duplicates) and the single values only set once while walking.
    pub(crate) fn reset(&mut self, mark: &OutMark) {
        for (l, n) in self.lists().into_iter().zip(mark.lens) {
            l.truncate(n);
        }
        self.argv.truncate(mark.argv);
        if !mark.dynamic {
            self.dynamic = None;
        }
        if !mark.fed_code {
            self.fed_code = None;
        }
        if !mark.parse_error {
            self.parse_error = None;
        }
    }
}

/// An `scp -t` seen while walking.
#[derive(Debug, Clone)]
pub(crate) struct ScpSinkSeen {
    pub(crate) dest: Option<String>,
    /// Run at the top level with the channel's data as its stdin.
    pub(crate) fed_by_channel: bool,
}

/// Classifies one command line of an exec request.
pub fn classify(line: &str) -> Classified {
    classify_as(line, Origin::Exec)
}

/// Classifies one command line from `origin`.
pub fn classify_as(line: &str, origin: Origin) -> Classified {
    // The grammar is third-party code on hostile input: a panic in it refuses the line
    // instead of ending the session's task.
    std::panic::catch_unwind(|| classify_unguarded(line, origin)).unwrap_or_else(|_| {
        let e =
            "the command line could not be classified (the shell parser failed on it)".to_owned();
        Classified {
            dynamic: Some(e.clone()),
            parse_error: Some(e),
            ..Classified::default()
        }
    })
}

fn classify_unguarded(line: &str, origin: Origin) -> Classified {
    let mut w = Walker::new(origin);
    if line.len() > MAX_LEN {
        w.out.too_long = true;
        let e = format!(
            "the command line is {} bytes, over the {} KiB limit",
            line.len(),
            MAX_LEN / 1024
        );
        w.out.dynamic = Some(e.clone());
        w.out.parse_error = Some(e);
        return w.out;
    }
    // bash drops NUL bytes from its input (and sshd refuses them in an exec).
    let line: std::borrow::Cow<'_, str> = if line.contains('\0') {
        line.replace('\0', "").into()
    } else {
        line.into()
    };
    w.code(&line, Stdin::Inherit);
    w.out.program = w.out.argv.first().map(|a| basename(a).to_owned());
    w.out.pivot = pivots(&w.out.programs, &w.out.urls);
    if w.out.commands.len() == 1 && transfer_kind(&w.out.argv).is_some() {
        // The server side of an scp or rsync transfer reaches nowhere.
        w.out.pivot.retain(|p| p != "ssh");
    }
    // The names in an scp stream are read only where the gateway's view of the stream
    // is the sink's: `scp -t` alone on an exec line, reading the channel from its
    // first byte (anything else on the line could read part of it first).
    match std::mem::take(&mut w.scp_sinks).as_slice() {
        [] => {}
        [sink]
            if origin == Origin::Exec
                && sink.fed_by_channel
                && w.out.commands.len() == 1
                && transfer_kind(&w.out.argv) == Some("scp") =>
        {
            w.out.scp_sink = Some(sink.dest.clone());
        }
        _ => w.dynamic(
            "an `scp -t` writes files named in its stream, which the gateway reads only when `scp -t` is the whole command line",
        ),
    }
    w.out
}

/// Clients by the protocol they speak (`ssh.pivot`).
const PIVOT_CLIENTS: &[(&str, &[&str])] = &[
    (
        "postgres",
        &[
            "psql",
            "pg_dump",
            "pg_dumpall",
            "pg_restore",
            "pg_basebackup",
            "pg_receivewal",
            "pg_recvlogical",
            "pg_isready",
            "pgbench",
            "pgcli",
            "createdb",
            "dropdb",
            "createuser",
            "dropuser",
            "vacuumdb",
            "reindexdb",
            "clusterdb",
        ],
    ),
    (
        "mysql",
        &[
            "mysql",
            "mariadb",
            "mysqldump",
            "mariadb-dump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mycli",
        ],
    ),
    (
        "mongodb",
        &[
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
        ],
    ),
    ("redis", &["redis-cli", "redis-benchmark"]),
    (
        "kubernetes",
        &[
            "kubectl", "helm", "oc", "k9s", "kubeadm", "stern", "kubens", "kubectx",
        ],
    ),
    ("ssh", &["ssh", "scp", "sftp", "autossh", "mosh", "rsync"]),
];

/// HTTP clients: a Kubernetes API URL among the line's URLs makes them a
/// `kubernetes` pivot.
const HTTP_CLIENTS: &[&str] = &[
    "curl", "wget", "http", "https", "xh", "httpie", "python3", "python",
];

fn pivots(programs: &[String], urls: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: &str| {
        if !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    };
    for (protocol, clients) in PIVOT_CLIENTS {
        if programs.iter().any(|p| clients.contains(&p.as_str())) {
            add(protocol);
        }
    }
    let kube_api = |u: &str| {
        let u = u.to_ascii_lowercase();
        [
            "/api/v1",
            "/apis/",
            ":6443",
            "kubernetes.default",
            "/version?",
            "/openapi/v",
        ]
        .iter()
        .any(|m| u.contains(m))
    };
    if programs.iter().any(|p| HTTP_CLIENTS.contains(&p.as_str()))
        && urls.iter().any(|u| kube_api(u))
    {
        add("kubernetes");
    }
    out
}

/// Whether `text` is the start of a construct that goes on in the next line (open
/// quote, trailing `\\`, here-document, `for … do` without `done`): a shell reading
/// it waits for more before running any of it.
pub fn incomplete(text: &str) -> bool {
    // As `classify`: bash drops NUL bytes.
    let text: std::borrow::Cow<'_, str> = if text.contains('\0') {
        text.replace('\0', "").into()
    } else {
        text.into()
    };
    let text = text.as_ref();
    if text.len() > MAX_LEN || unparseable(text).is_some() {
        return false;
    }
    if brush_differs_on_end(text) {
        return false;
    }
    // brush-parser also reports a stray closing word (`echo a; done`) as the end of
    // input: a construct still open stays open when a command follows it.
    let trimmed = text.trim_end();
    open_at_end(text)
        && (["\\", "|", "&&", "||"].iter().any(|e| trimmed.ends_with(e))
            || open_at_end(&format!("{text}\n:")))
}

fn open_at_end(text: &str) -> bool {
    let parsed = std::panic::catch_unwind(|| {
        Parser::new(text.as_bytes(), &ParserOptions::default()).parse_program()
    });
    match parsed {
        Ok(Err(brush_parser::ParseError::ParsingAtEndOfInput)) => true,
        Ok(Err(brush_parser::ParseError::Tokenizing { inner, .. })) => inner.is_incomplete(),
        _ => false,
    }
}

/// Text on which brush-parser may find a construct open where bash finds the line
/// complete: the differential test against bash (`tests.rs`) found such pairs only
/// around `${…}`, arithmetic (`$((…))`, `$[…]`), `$$` before a quote or bracket
/// (`$$` and a literal to bash, an open expansion to brush-parser), `\$'` (a `$`
/// and a quoted string to bash, an open `$'…'` to brush-parser), arithmetic
/// commands (`((`, `for ((`), extended globs (`@(…)`), `coproc`, and a command that
/// starts with a redirection. A line holding
/// any of these is judged alone, never taken as the start of a construct: with keys
/// typed ahead, bash would run it at once.
fn brush_differs_on_end(text: &str) -> bool {
    [
        "${", "$((", "((", "$[", "$$", "\\$", "@(", "!(", "+(", "*(", "?(", "coproc",
    ]
    .iter()
    .any(|p| text.contains(p))
        || redirection_first(text)
}

/// A command that starts with a redirection (`>f else`): bash takes the word after it
/// as a plain word, brush-parser as a reserved word. Scanned without regard to quotes
/// (it may find one that is not there, never miss one).
fn redirection_first(text: &str) -> bool {
    let mut start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() && c != '\n' {
            continue;
        }
        let digit_redirect = c.is_ascii_digit() && matches!(chars.peek(), Some('<' | '>'));
        if start && (c == '<' || c == '>' || digit_redirect) {
            return true;
        }
        start = matches!(c, ';' | '&' | '|' | '(' | '\n' | '{' | '}' | '!');
    }
    false
}

/// Why `text` is not given to the parser: input on which brush-parser backtracks
/// without bound, loops or panics (all found by fuzzing).
fn unparseable(text: &str) -> Option<String> {
    if expanding_delimiter(text) {
        return Some("a here-document delimiter starts with an expansion".to_owned());
    }
    if huge_descriptor(text) {
        return Some("a redirection's descriptor number is too large".to_owned());
    }
    if heredoc_in_open_expansion(text) {
        return Some(
            "`<<` inside an arithmetic or parameter expansion that is not closed".to_owned(),
        );
    }
    if text.contains("$${") || text.contains("$$[") {
        // bash reads `$$` and a literal `{`/`[`; brush-parser reads `$` and an
        // expansion, and would not see the commands of `echo $${;cmd;}`.
        return Some("`$${` or `$$[`, which bash and the gateway's parser read apart".to_owned());
    }
    (nesting(text) > MAX_NESTING).then(|| {
        format!(
            "brackets nested too deeply (over {MAX_NESTING}, or over {MAX_BARE_PARENS} bare parentheses)"
        )
    })
}

/// A here-document whose delimiter holds an expansion (`<<$(…`, `` <<E`…` ``,
/// `<<EOF${x}`) or is missing (`<< <y`): bash takes the first literally and no one
/// writes it, rejects the second, and brush-parser's tokenizer can loop on either
/// without end or take gigabytes (found by fuzzing).
fn expanding_delimiter(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text.get(i..).and_then(|r| r.find("<<")) {
        let mut j = i + pos + 2;
        if b.get(j) == Some(&b'<') {
            i = j + 1;
            continue;
        }
        while matches!(b.get(j), Some(b'-' | b' ' | b'\t')) {
            j += 1;
        }
        let start = j;
        while let Some(c) = b.get(j) {
            if c.is_ascii_whitespace() || matches!(c, b';' | b'|' | b'&' | b'<' | b'>') {
                break;
            }
            j += 1;
        }
        let word = text.get(start..j).unwrap_or_default();
        // No word at all (`<< <y`, `<<|`): a syntax error to bash, and brush-parser's
        // tokenizer can take gigabytes on it inside `$(` (found by fuzzing).
        if word.is_empty() || word.contains("$(") || word.contains('`') || word.contains("${") {
            return true;
        }
        i = j.max(i + pos + 2);
    }
    false
}

/// `<<` inside a `$((`, `$[` or `${` that the text never closes: a syntax error to
/// bash, and brush-parser's tokenizer takes gigabytes on some of them (`$((1$[l] <<  a `,
/// found by fuzzing). The scan skips single-quoted text and pairs openers with
/// closers innermost first.
fn heredoc_in_open_expansion(text: &str) -> bool {
    // `$[…]` is deprecated and rare: with a here-document anywhere it is refused.
    if text.contains("$[") && text.replace("<<<", "").contains("<<") {
        return true;
    }
    let b = text.as_bytes();
    // The closers expected, innermost last: `$((` needs `))`; inside an expansion
    // every bracket counts.
    let mut open: Vec<&[u8]> = Vec::new();
    let mut heredoc_inside = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let rest = b.get(i..).unwrap_or_default();
        match c {
            b'\\' => i += 1,
            b'\'' if open.is_empty() => {
                while b.get(i + 1).is_some_and(|c| *c != b'\'') {
                    i += 1;
                }
                i += 1;
            }
            b'$' if rest.starts_with(b"$((") => {
                open.push(b"))");
                i += 2;
            }
            b'$' if rest.starts_with(b"$[") => {
                open.push(b"]");
                i += 1;
            }
            b'$' if rest.starts_with(b"${") => {
                open.push(b"}");
                i += 1;
            }
            b'(' if !open.is_empty() => open.push(b")"),
            b'[' if !open.is_empty() => open.push(b"]"),
            b'{' if !open.is_empty() => open.push(b"}"),
            b')' | b']' | b'}' if open.last().is_some_and(|e| rest.starts_with(e)) => {
                if let Some(e) = open.pop() {
                    i += e.len() - 1;
                }
            }
            b'<' if rest.starts_with(b"<<") && !open.is_empty() => heredoc_inside = true,
            _ => {}
        }
        i += 1;
    }
    heredoc_inside && !open.is_empty()
}

/// A run of 10 or more digits before `<` or `>`: a redirection's descriptor number
/// that overflows (brush-parser panics on it; found by fuzzing).
fn huge_descriptor(text: &str) -> bool {
    let mut digits = 0usize;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'<' | b'>' if digits >= 10 => return true,
            _ => digits = 0,
        }
    }
    false
}

/// Which file-transfer server an exec command starts, if any (`scp -t`/`scp -f`,
/// `rsync --server`): their byte streams are relayed untouched.
pub fn transfer_kind(argv: &[String]) -> Option<&'static str> {
    let program = argv.first().map(|a| basename(a))?;
    let has = |flag: &str| argv.iter().skip(1).any(|a| a == flag);
    let short = |c: char| {
        argv.iter()
            .skip(1)
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(c))
    };
    match program {
        "scp" if short('t') || short('f') => Some("scp"),
        "rsync" if has("--server") => Some("rsync"),
        _ => None,
    }
}

/// The last `/`-separated part of `word`.
pub fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// What a command's standard input is.
#[derive(Debug, Clone)]
pub(crate) enum Stdin {
    /// Whatever the enclosing code reads (the origin at top level).
    Inherit,
    /// The output of a command: its static text when it is known (`echo` of static
    /// words), and a description.
    Pipe(Option<String>, String),
    /// A file (`< f`).
    File(String),
    /// A here-document or here-string: its text when static.
    Text(Option<String>),
}

pub(crate) struct Walker {
    pub(crate) out: Classified,
    pub(crate) vars: Vars,
    functions: Vec<String>,
    pub(crate) aliases: Vec<String>,
    /// Every `scp -t` on the line.
    pub(crate) scp_sinks: Vec<ScpSinkSeen>,
    /// Loops around the code being walked.
    pub(crate) loops: usize,
    /// `cd`, `pushd` and `popd` walked so far.
    pub(crate) cds: usize,
    /// The working directory as far as the line shows (`~` at the start), or `None`
    /// after a `cd` to somewhere unknown.
    pub(crate) cwd: Option<String>,
    pub(crate) depth: usize,
    origin: Origin,
    /// The stdin of the code being walked (for `Stdin::Inherit`).
    inherited: Vec<Stdin>,
    first: bool,
    commands: usize,
}

impl Walker {
    fn new(origin: Origin) -> Self {
        Self {
            out: Classified::default(),
            vars: Vars::new(),
            functions: Vec::new(),
            aliases: Vec::new(),
            scp_sinks: Vec::new(),
            loops: 0,
            cds: 0,
            cwd: Some("~".into()),
            depth: 0,
            origin,
            inherited: Vec::new(),
            first: true,
            commands: 0,
        }
    }

    pub(crate) fn dynamic(&mut self, reason: impl Into<String>) {
        if self.out.dynamic.is_none() {
            self.out.dynamic = Some(reason.into());
        }
    }

    pub(crate) fn add_program(&mut self, word: &str) {
        let name = basename(word);
        if name.is_empty() {
            return;
        }
        if !self.out.programs.iter().any(|p| p == name) {
            self.out.programs.push(name.to_owned());
        }
    }

    pub(crate) fn inline(&mut self, language: &str) {
        if !self.out.inline_code.iter().any(|l| l == language) {
            self.out.inline_code.push(language.to_owned());
        }
    }

    pub(crate) fn fed(&mut self, what: String) {
        if self.out.fed_code.is_none() {
            self.out.fed_code = Some(what);
        }
    }

    pub(crate) fn script(&mut self, path: &str) {
        if !self.out.scripts.iter().any(|s| s == path) {
            self.out.scripts.push(path.to_owned());
        }
    }

    pub(crate) fn write(&mut self, path: &str) {
        let p = self.resolve(path);
        if !self.out.writes.contains(&p) {
            self.out.writes.push(p);
        }
    }

    /// `path` against the known working directory.
    pub(crate) fn resolve(&self, path: &str) -> String {
        if path.starts_with('/') || path.starts_with('~') {
            return normalize(path);
        }
        match &self.cwd {
            Some(cwd) => normalize(&format!("{cwd}/{path}")),
            None => path.to_owned(),
        }
    }

    /// What `Stdin::Inherit` means here.
    pub(crate) fn stdin_of(&self, s: &Stdin) -> Stdin {
        match s {
            Stdin::Inherit => self.inherited.last().cloned().unwrap_or(Stdin::Inherit),
            other => other.clone(),
        }
    }

    /// Setting a variable that changes which program runs or what it loads (`PATH`,
    /// `LD_PRELOAD`, `BASH_ENV`, `IFS`, ...) makes the line dynamic.
    pub(crate) fn risky_variable(&mut self, name: &str) {
        if RISKY_VARIABLES.contains(&name) {
            self.dynamic(format!(
                "`{name}` is set on the line, which changes what runs"
            ));
        }
    }

    /// A variable given text that runs a command when the shell later reads it as
    /// code — in arithmetic (`$((x))` evaluates `a[$(cmd)]`), a prompt (`PS1`), `${x@P}`
    /// or `eval` — makes the line dynamic: where it will be read is not on this line.
    pub(crate) fn code_in_value(&mut self, name: &str, value: &str) {
        if ["$(", "`", "<(", ">("].iter().any(|p| value.contains(p)) {
            self.dynamic(format!(
                "`{name}` is given text that runs a command if the shell reads it as code (arithmetic, a prompt, `eval`)"
            ));
        }
    }

    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// Parses and walks shell code (the line itself, `sh -c` text, `eval` text, a
    /// static here-document fed to a shell) with `stdin` as its input.
    pub(crate) fn code(&mut self, text: &str, stdin: Stdin) {
        if self.depth > MAX_DEPTH {
            self.dynamic(format!("shell code nested more than {MAX_DEPTH} deep"));
            return;
        }
        if let Some(e) = unparseable(text) {
            self.out.parse_error.get_or_insert(e.clone());
            self.dynamic(e);
            return;
        }
        let program = match Parser::new(text.as_bytes(), &ParserOptions::default()).parse_program()
        {
            Ok(p) => p,
            Err(e) => {
                let e = format!("does not parse as shell: {e}");
                self.out.parse_error.get_or_insert(e.clone());
                self.dynamic(e);
                return;
            }
        };
        let stdin = self.stdin_of(&stdin);
        self.inherited.push(stdin);
        self.depth += 1;
        for list in &program.complete_commands {
            self.list(list, true);
        }
        self.depth -= 1;
        self.inherited.pop();
    }

    fn list(&mut self, list: &ast::CompoundList, certain: bool) {
        for ast::CompoundListItem(and_or, sep) in &list.0 {
            let background = matches!(sep, ast::SeparatorOperator::Async);
            self.and_or(and_or, certain && !background);
        }
    }

    fn and_or(&mut self, a: &ast::AndOrList, certain: bool) {
        self.pipeline(&a.first, certain);
        for next in &a.additional {
            let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
            self.pipeline(p, false);
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline, certain: bool) {
        let piped = p.seq.len() > 1;
        let mut stdin = Stdin::Inherit;
        for cmd in &p.seq {
            let produced = self.command(cmd, certain && !piped, stdin);
            stdin = produced;
        }
    }

    /// Walks one command; returns what its output is as the next command's stdin.
    fn command(&mut self, c: &Command, certain: bool, stdin: Stdin) -> Stdin {
        self.commands += 1;
        if self.commands > MAX_COMMANDS {
            self.dynamic(format!("more than {MAX_COMMANDS} commands"));
            return Stdin::Pipe(None, "a command".into());
        }
        match c {
            Command::Simple(s) => self.simple(s, certain, stdin),
            Command::Compound(cc, redirects) => {
                let stdin = match redirects {
                    Some(r) => self.redirects(&r.0, stdin),
                    None => stdin,
                };
                let stdin = self.stdin_of(&stdin);
                self.inherited.push(stdin);
                self.compound(cc, certain);
                self.inherited.pop();
                Stdin::Pipe(None, "a compound command".into())
            }
            Command::Function(f) => {
                self.functions.push(f.fname.value.clone());
                let ast::FunctionBody(body, redirects) = &f.body;
                if let Some(r) = redirects {
                    self.redirects(&r.0, Stdin::Inherit);
                }
                // The body runs when called (with unknown arguments), at any later
                // point: its commands are judged as part of the line, with every
                // variable unknown (`x=ls; f(){ $x; }; x=curl; f` runs curl) and the
                // working directory unknown. What it assigns, or a `cd` in it, is
                // unknown after the definition.
                let outer_vars = std::mem::replace(&mut self.vars, Vars::new());
                let outer_cwd = self.cwd.take();
                let cds = self.cds;
                self.compound(body, false);
                let inner = std::mem::replace(&mut self.vars, outer_vars);
                self.vars.forget_changed(&inner);
                self.cwd = if self.cds == cds { outer_cwd } else { None };
                Stdin::Pipe(None, format!("function `{}`", f.fname.value))
            }
            Command::ExtendedTest(expr, redirects) => {
                if let Some(r) = redirects {
                    self.redirects(&r.0, Stdin::Inherit);
                }
                self.test_expr(expr);
                Stdin::Pipe(None, "a test".into())
            }
        }
    }

    fn test_expr(&mut self, e: &ast::ExtendedTestExprCommand) {
        fn walk(w: &mut Walker, e: &ast::ExtendedTestExpr) {
            match e {
                ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                    walk(w, a);
                    walk(w, b);
                }
                ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
                    walk(w, a);
                }
                ast::ExtendedTestExpr::UnaryTest(_, x) => {
                    w.words(&[x.value.as_str()]);
                }
                ast::ExtendedTestExpr::BinaryTest(op, x, y) => {
                    use ast::BinaryPredicate as P;
                    if matches!(
                        op,
                        P::ArithmeticEqualTo
                            | P::ArithmeticNotEqualTo
                            | P::ArithmeticLessThan
                            | P::ArithmeticLessThanOrEqualTo
                            | P::ArithmeticGreaterThan
                            | P::ArithmeticGreaterThanOrEqualTo
                    ) {
                        // `[[ a -eq b ]]` evaluates both sides as arithmetic.
                        let mut subs = Substitutions::new();
                        word::arithmetic(&x.value, &w.vars, &mut subs);
                        word::arithmetic(&y.value, &w.vars, &mut subs);
                        w.substitutions(subs);
                    }
                    w.words(&[x.value.as_str(), y.value.as_str()]);
                }
            }
        }
        walk(self, &e.expr);
    }

    fn compound(&mut self, cc: &CompoundCommand, certain: bool) {
        match cc {
            CompoundCommand::BraceGroup(g) => self.list(&g.list, certain),
            CompoundCommand::Subshell(s) => self.list(&s.list, false),
            CompoundCommand::ForClause(f) => {
                if let Some(values) = &f.values {
                    let raws: Vec<&str> = values.iter().map(|w| w.value.as_str()).collect();
                    self.words(&raws);
                }
                self.vars.set(&f.variable_name, Var::Unknown);
                self.repeated(|w| w.list(&f.body.list, false));
            }
            CompoundCommand::ArithmeticForClause(f) => {
                if let Some(e) = &f.initializer {
                    self.arithmetic(&e.value);
                }
                self.repeated(|w| {
                    for e in [&f.condition, &f.updater].into_iter().flatten() {
                        w.arithmetic(&e.value);
                    }
                    w.list(&f.body.list, false);
                });
            }
            CompoundCommand::CaseClause(c) => {
                self.words(&[c.value.value.as_str()]);
                for item in &c.cases {
                    let raws: Vec<&str> = item.patterns.iter().map(|w| w.value.as_str()).collect();
                    self.words(&raws);
                    if let Some(cmd) = &item.cmd {
                        self.list(cmd, false);
                    }
                }
            }
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition, certain);
                self.list(&i.then, false);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, false);
                    }
                    self.list(&e.body, false);
                }
            }
            CompoundCommand::WhileClause(ast::WhileOrUntilClauseCommand(cond, body, _))
            | CompoundCommand::UntilClause(ast::WhileOrUntilClauseCommand(cond, body, _)) => {
                self.repeated(|w| {
                    w.list(cond, false);
                    w.list(&body.list, false);
                });
            }
            CompoundCommand::Arithmetic(a) => self.arithmetic(&a.expr.value),
            CompoundCommand::Coprocess(c) => {
                self.command(&c.body, false, Stdin::Inherit);
            }
        }
    }

    /// Code that runs more than once (a loop's condition and body). A later
    /// iteration sees what an earlier one assigned (`x=ls; while :; do $x; x=curl;
    /// done` runs curl), so when the code assigns variables or changes directory it is
    /// walked again with those unknown, and only that walk counts. Loops nested more
    /// than 3 deep are walked once with every variable and the directory unknown.
    fn repeated(&mut self, walk: impl Fn(&mut Self)) {
        if self.loops >= 3 {
            self.vars.distrust();
            self.cwd = None;
            self.loops += 1;
            walk(self);
            self.loops -= 1;
            return;
        }
        self.loops += 1;
        // What the first walk adds to the output is appended (or set once): marks are
        // enough to take it back, without copying the output.
        let out = self.out.mark();
        let (vars, cwd, first) = (self.vars.clone(), self.cwd.clone(), self.first);
        let (functions, aliases, sinks) = (
            self.functions.len(),
            self.aliases.len(),
            self.scp_sinks.len(),
        );
        walk(self);
        if self.vars.differs(&vars) || self.cwd != cwd {
            let mut again = vars.clone();
            again.forget_changed(&self.vars);
            let cwd_again = if self.cwd == cwd { cwd } else { None };
            self.out.reset(&out);
            self.first = first;
            self.functions.truncate(functions);
            self.aliases.truncate(aliases);
            self.scp_sinks.truncate(sinks);
            self.vars = again;
            self.cwd = cwd_again;
            walk(self);
        }
        self.loops -= 1;
    }

    /// `(( … ))`: substitutions inside run; it may assign any variable.
    fn arithmetic(&mut self, text: &str) {
        let mut subs = Substitutions::new();
        let _ = word::evaluate(&format!("\"$(({text}))\""), &self.vars, &mut subs);
        self.substitutions(subs);
        let assigned = word::assigned_in_arithmetic(text);
        if !assigned.is_empty() || text.contains('=') {
            self.vars.distrust();
        }
        // What arithmetic assigns is an integer.
        for name in assigned {
            self.vars.set_integer(&name);
        }
    }

    /// Evaluates words for their substitutions (values unused).
    fn words(&mut self, raws: &[&str]) -> Vec<Arg> {
        let mut subs = Substitutions::new();
        let args = word::arguments(raws.iter().copied(), &self.vars, &mut subs);
        self.substitutions(subs);
        args
    }

    /// Runs the text of command substitutions met in words.
    fn substitutions(&mut self, subs: Substitutions) {
        for s in subs {
            if let Some(reason) = s.strip_prefix(word::CONCERN) {
                self.dynamic(reason.to_owned());
                continue;
            }
            self.code(&s, Stdin::Inherit);
        }
    }

    /// Records redirections; returns the stdin they give.
    fn redirects(&mut self, list: &[IoRedirect], mut stdin: Stdin) -> Stdin {
        for r in list {
            match r {
                IoRedirect::File(fd, kind, target) => {
                    let path = match target {
                        ast::IoFileRedirectTarget::Filename(w) => {
                            let a = self.words(&[w.value.as_str()]);
                            let text = a
                                .iter()
                                .map(|a| a.text.as_str())
                                .collect::<Vec<_>>()
                                .join(" ");
                            // Reads too: `< /dev/tcp/…` connects.
                            if let Some(reason) = a.iter().find_map(|a| a.dynamic.clone()) {
                                self.dynamic(format!("a redirection target: {reason}"));
                            }
                            Some(text)
                        }
                        ast::IoFileRedirectTarget::Fd(_) => None,
                        ast::IoFileRedirectTarget::Duplicate(w) => {
                            let a = self.words(&[w.value.as_str()]);
                            let text: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
                            let text = text.join(" ");
                            // `>&file` (not a descriptor) writes the file.
                            (!text.chars().all(|c| c.is_ascii_digit() || c == '-')).then_some(text)
                        }
                        ast::IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                            self.list(&sub.list, false);
                            None
                        }
                    };
                    let Some(path) = path else { continue };
                    self.redirect_target(&path);
                    match kind {
                        IoFileRedirectKind::Read => {
                            if fd.is_none_or(|f| f == 0) {
                                stdin = Stdin::File(path);
                            }
                        }
                        IoFileRedirectKind::ReadAndWrite => {
                            self.write(&path);
                            if fd.is_none_or(|f| f == 0) {
                                stdin = Stdin::File(path);
                            }
                        }
                        IoFileRedirectKind::DuplicateInput => {}
                        _ => self.write(&path),
                    }
                }
                IoRedirect::HereDocument(_, doc) => {
                    let text =
                        if doc.requires_expansion && word::too_many_substitutions(&doc.doc.value) {
                            self.dynamic(
                                "a here-document body with more than three `$(` is not parsed",
                            );
                            None
                        } else if doc.requires_expansion {
                            let mut subs = Substitutions::new();
                            let t = word::evaluate_heredoc(&doc.doc.value, &self.vars, &mut subs);
                            let dynamic = !subs.is_empty() || t.is_none();
                            self.substitutions(subs);
                            if dynamic { None } else { t }
                        } else {
                            Some(doc.doc.value.clone())
                        };
                    stdin = Stdin::Text(text);
                }
                IoRedirect::HereString(_, w) => {
                    let a = self.words(&[w.value.as_str()]);
                    let known = a.iter().all(|a| a.dynamic.is_none());
                    let text: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
                    stdin = Stdin::Text(known.then(|| format!("{}\n", text.join(" "))));
                }
                IoRedirect::OutputAndError(w, _) => {
                    let a = self.words(&[w.value.as_str()]);
                    if let Some(reason) = a.iter().find_map(|a| a.dynamic.clone()) {
                        self.dynamic(format!("a redirection target: {reason}"));
                    }
                    let text: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
                    let path = text.join(" ");
                    self.redirect_target(&path);
                    self.write(&path);
                }
            }
        }
        stdin
    }

    fn redirect_target(&mut self, path: &str) {
        let p = self.resolve(path);
        if !self.out.redirects.contains(&p) {
            self.out.redirects.push(p);
        }
    }

    fn simple(&mut self, s: &ast::SimpleCommand, certain: bool, stdin: Stdin) -> Stdin {
        let mut assignments: Vec<&ast::Assignment> = Vec::new();
        let mut raws: Vec<&str> = Vec::new();
        let mut redirects: Vec<IoRedirect> = Vec::new();
        let mut shown_redirects: Vec<String> = Vec::new();
        let items = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .map(|i| (i, true))
            .chain(s.word_or_name.iter().map(|_| (&PLACEHOLDER, false)))
            .chain(s.suffix.iter().flat_map(|p| p.0.iter()).map(|i| (i, false)));
        let mut name_done = false;
        for (item, in_prefix) in items {
            if std::ptr::eq(item, &PLACEHOLDER) {
                if let Some(w) = &s.word_or_name {
                    raws.push(&w.value);
                }
                name_done = true;
                continue;
            }
            match item {
                ast::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                    if in_prefix && !name_done {
                        assignments.push(a);
                    } else {
                        raws.push(&w.value);
                    }
                }
                ast::CommandPrefixOrSuffixItem::Word(w) => raws.push(&w.value),
                ast::CommandPrefixOrSuffixItem::IoRedirect(r) => {
                    shown_redirects.push(redirect_text(r));
                    redirects.push(r.clone());
                }
                ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                    self.list(&sub.list, false);
                    raws.push("/dev/fd/63");
                }
            }
        }
        // Assignment values are expanded first (their substitutions run).
        let mut assigned: Vec<(String, Var)> = Vec::new();
        // Names given an integer (`n=$((n+1))`, `n=$(wc -l < f)`).
        let mut integers: Vec<String> = Vec::new();
        for a in &assignments {
            let name = match &a.name {
                ast::AssignmentName::VariableName(n) => n.clone(),
                ast::AssignmentName::ArrayElementName(n, index) => {
                    // The index is arithmetic: its substitutions run.
                    self.words(&[index.as_str()]);
                    let mut subs = Substitutions::new();
                    word::arithmetic(index, &self.vars, &mut subs);
                    self.substitutions(subs);
                    n.clone()
                }
            };
            let value = match &a.value {
                ast::AssignmentValue::Scalar(w) => {
                    let mut subs = Substitutions::new();
                    let v = match word::evaluate_assignment(&w.value, &self.vars, &mut subs) {
                        Some(v) if !a.append => Var::Known(v),
                        _ => Var::Unknown,
                    };
                    self.substitutions(subs);
                    if !a.append && word::integer_value(&w.value) {
                        integers.push(name.clone());
                    }
                    v
                }
                ast::AssignmentValue::Array(items) => {
                    for (k, v) in items {
                        let mut raw: Vec<&str> = vec![v.value.as_str()];
                        if let Some(k) = k {
                            raw.push(&k.value);
                        }
                        self.words(&raw);
                    }
                    Var::Unknown
                }
            };
            assigned.push((name, value));
        }
        let stdin = self.redirects(&redirects, stdin);
        for (name, value) in &assigned {
            self.risky_variable(name);
            if let Var::Known(v) = value {
                self.code_in_value(name, v);
            }
        }
        let args = self.words(&raws);
        if args.is_empty() {
            // Assignments alone set shell variables (for certain only when this
            // command always runs in this shell).
            for (name, v) in assigned {
                // Maybe assigned: an integer only if it held one before too.
                let integer =
                    integers.contains(&name) && (certain || self.vars.integer_safe(&name));
                self.vars.set(&name, if certain { v } else { Var::Unknown });
                if integer {
                    self.vars.set_integer(&name);
                }
            }
            return Stdin::Pipe(Some(String::new()), "nothing".into());
        }
        let text = args
            .iter()
            .map(|a| a.text.as_str())
            .chain(shown_redirects.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        self.out.commands.push(text);
        if self.first {
            self.first = false;
            self.out.argv = args.iter().map(|a| a.text.clone()).collect();
            self.out.argv.extend(
                shown_redirects
                    .iter()
                    .flat_map(|r| r.split(' ').map(str::to_owned).collect::<Vec<_>>()),
            );
        }
        self.run(&args, &stdin, certain)
    }
}

/// Stands for the command word in the prefix/suffix stream.
static PLACEHOLDER: ast::CommandPrefixOrSuffixItem =
    ast::CommandPrefixOrSuffixItem::Word(ast::Word {
        value: String::new(),
        loc: None,
    });

/// A redirection as written, for `argv` and `commands`.
fn redirect_text(r: &IoRedirect) -> String {
    let fd = |f: &Option<i32>| f.map(|f| f.to_string()).unwrap_or_default();
    match r {
        IoRedirect::File(f, kind, target) => {
            let op = match kind {
                IoFileRedirectKind::Read => "<",
                IoFileRedirectKind::Write => ">",
                IoFileRedirectKind::Append => ">>",
                IoFileRedirectKind::ReadAndWrite => "<>",
                IoFileRedirectKind::Clobber => ">|",
                IoFileRedirectKind::DuplicateInput => "<&",
                IoFileRedirectKind::DuplicateOutput => ">&",
            };
            match target {
                ast::IoFileRedirectTarget::Filename(w) => format!("{}{op} {}", fd(f), w.value),
                ast::IoFileRedirectTarget::Fd(n) => format!("{}{op}{n}", fd(f)),
                ast::IoFileRedirectTarget::Duplicate(w) => format!("{}{op}{}", fd(f), w.value),
                ast::IoFileRedirectTarget::ProcessSubstitution(..) => format!("{}{op} <(…)", fd(f)),
            }
        }
        IoRedirect::HereDocument(f, d) => format!("{}<< {}", fd(f), d.here_end.value),
        IoRedirect::HereString(f, w) => format!("{}<<< {}", fd(f), w.value),
        IoRedirect::OutputAndError(w, append) => {
            format!("{} {}", if *append { "&>>" } else { "&>" }, w.value)
        }
    }
}

/// `a/./b/../c` → `a/c` (textually; symlinks are not followed).
pub(crate) fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts
                    .last()
                    .is_some_and(|l| *l != ".." && !l.starts_with('~'))
                {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Most bare `(` (subshells, arithmetic commands, process substitutions) open at
/// once: brush-parser's backtracking doubles with each level (found by fuzzing).
const MAX_BARE_PARENS: usize = 12;

/// The deepest bracket nesting in `text` (quotes not considered: an over-estimate),
/// or more than [`MAX_NESTING`] when bare parentheses nest deeper than
/// [`MAX_BARE_PARENS`].
fn nesting(text: &str) -> usize {
    let (mut max, mut bare, mut max_bare) = (0usize, 0usize, 0usize);
    // For each open bracket: whether it is a bare `(`.
    let mut stack: Vec<bool> = Vec::new();
    let mut prev = 0u8;
    for b in text.bytes() {
        match b {
            b'(' | b'{' | b'[' => {
                // Process substitutions (`<(`, `>(`) are subshells too, and after a
                // redirection operator the parser backtracks through them the same
                // way (found by fuzzing).
                let is_bare = b == b'(' && prev != b'$';
                stack.push(is_bare);
                if is_bare {
                    bare += 1;
                    max_bare = max_bare.max(bare);
                }
                max = max.max(stack.len());
            }
            b')' | b'}' | b']' if stack.pop() == Some(true) => bare -= 1,
            _ => {}
        }
        prev = b;
    }
    if max_bare > MAX_BARE_PARENS {
        return MAX_NESTING + 1;
    }
    max
}
