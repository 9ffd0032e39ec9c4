//! What one evaluated command runs: builtins that change what later words mean,
//! wrappers unwrapped by their option grammars, shells and interpreters with inline
//! code, code fed to them as data.

use super::word::{self, Arg, Substitutions, Var};
use super::{Origin, Stdin, Walker, basename};

/// Shells: `-c` text is shell code, parsed recursively.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "posh", "rbash", "fish",
    "tcsh", "csh",
];

/// How a wrapper's arguments are read before the command it runs.
struct Wrapper {
    name: &'static str,
    /// Options taking a value (short `-u`, long `--user`; `--user=x` is understood).
    value: &'static [&'static str],
    /// Options without a value.
    flags: &'static [&'static str],
    /// Operands before the command (`timeout DURATION`, `chroot NEWROOT`).
    operands: usize,
    /// Options after which the wrapper runs no command (`command -v`, `taskset -p`).
    no_command: &'static [&'static str],
}

const WRAPPERS: &[Wrapper] = &[
    Wrapper {
        name: "sudo",
        value: &[
            "-u",
            "--user",
            "-g",
            "--group",
            "-C",
            "--close-from",
            "-D",
            "--chdir",
            "-h",
            "--host",
            "-p",
            "--prompt",
            "-r",
            "--role",
            "-t",
            "--type",
            "-U",
            "--other-user",
            "-T",
            "--command-timeout",
            "-R",
            "--chroot",
        ],
        flags: &[
            "-A",
            "--askpass",
            "-b",
            "--background",
            "-E",
            "--preserve-env",
            "-H",
            "--set-home",
            "-k",
            "--reset-timestamp",
            "-n",
            "--non-interactive",
            "-P",
            "--preserve-groups",
            "-S",
            "--stdin",
            "-B",
            "--bell",
            "-N",
            "--no-update",
        ],
        operands: 0,
        no_command: &[
            "-l",
            "--list",
            "-v",
            "--validate",
            "-K",
            "--remove-timestamp",
            "-V",
            "--version",
            "-e",
            "--edit",
        ],
    },
    Wrapper {
        name: "doas",
        value: &["-u", "-C"],
        flags: &["-n", "-L"],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "nice",
        value: &["-n", "--adjustment"],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "nohup",
        value: &[],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "timeout",
        value: &["-s", "--signal", "-k", "--kill-after"],
        flags: &[
            "-v",
            "--verbose",
            "--preserve-status",
            "--foreground",
            "-f",
            "-p",
        ],
        operands: 1,
        no_command: &[],
    },
    Wrapper {
        name: "strace",
        value: &[
            "-o",
            "--output",
            "-e",
            "-p",
            "--attach",
            "-s",
            "--string-limit",
            "-u",
            "--user",
            "-E",
            "--env",
            "-a",
            "--columns",
            "-b",
            "--detach-on",
            "-I",
            "--interruptible",
            "-O",
            "--summary-syscall-overhead",
            "-S",
            "--summary-sort-by",
            "-X",
            "--const-print-style",
            "-P",
            "--trace-path",
            "--trace",
            "--signal",
            "--status",
            "--quiet",
            "--decode-fds",
        ],
        flags: &[
            "-f",
            "--follow-forks",
            "-ff",
            "--output-separately",
            "-c",
            "--summary-only",
            "-C",
            "--summary",
            "-d",
            "--debug",
            "-D",
            "--daemonize",
            "-F",
            "-i",
            "--instruction-pointer",
            "-k",
            "--stack-trace",
            "-n",
            "--syscall-number",
            "-q",
            "-qq",
            "-r",
            "--relative-timestamps",
            "-t",
            "--absolute-timestamps",
            "-tt",
            "-ttt",
            "-T",
            "--syscall-times",
            "-v",
            "--no-abbrev",
            "-V",
            "--version",
            "-x",
            "-xx",
            "-y",
            "-yy",
            "-z",
            "-Z",
            "-w",
            "-h",
            "--help",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "ltrace",
        value: &[
            "-o",
            "--output",
            "-e",
            "-p",
            "-s",
            "-u",
            "-n",
            "--indent",
            "-a",
            "--align",
            "-l",
            "--library",
            "-A",
            "-D",
            "--debug",
            "-F",
            "--config",
            "-x",
            "-L",
        ],
        flags: &[
            "-b",
            "--no-signals",
            "-c",
            "-C",
            "--demangle",
            "-f",
            "-i",
            "-r",
            "-S",
            "-t",
            "-tt",
            "-ttt",
            "-T",
            "-w",
            "--where",
            "-h",
            "--help",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "stdbuf",
        value: &["-i", "--input", "-o", "--output", "-e", "--error"],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "setsid",
        value: &[],
        flags: &["-c", "--ctty", "-f", "--fork", "-w", "--wait"],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "chroot",
        value: &["--userspec", "--groups"],
        flags: &["--skip-chdir"],
        operands: 1,
        no_command: &[],
    },
    Wrapper {
        name: "ionice",
        value: &["-c", "--class", "-n", "--classdata"],
        flags: &["-t", "--ignore"],
        operands: 0,
        no_command: &["-p", "--pid", "-P", "--pgid", "-u", "--uid"],
    },
    Wrapper {
        name: "taskset",
        value: &[],
        flags: &["-a", "--all-tasks", "-c", "--cpu-list"],
        operands: 1,
        no_command: &["-p", "--pid"],
    },
    Wrapper {
        name: "chrt",
        value: &[
            "-T",
            "--sched-runtime",
            "-P",
            "--sched-period",
            "-D",
            "--sched-deadline",
        ],
        flags: &[
            "-a",
            "--all-tasks",
            "-b",
            "--batch",
            "-d",
            "--deadline",
            "-f",
            "--fifo",
            "-i",
            "--idle",
            "-o",
            "--other",
            "-r",
            "--rr",
            "-R",
            "--reset-on-fork",
            "-v",
            "--verbose",
        ],
        operands: 1,
        no_command: &["-p", "--pid", "-m", "--max"],
    },
    Wrapper {
        name: "time",
        value: &["-f", "--format", "-o", "--output"],
        flags: &[
            "-a",
            "--append",
            "-p",
            "--portability",
            "-v",
            "--verbose",
            "-q",
            "--quiet",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "command",
        value: &[],
        flags: &["-p"],
        operands: 0,
        no_command: &["-v", "-V"],
    },
    Wrapper {
        name: "builtin",
        value: &[],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "exec",
        value: &["-a"],
        flags: &["-c", "-l", "-cl", "-lc"],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "unbuffer",
        value: &[],
        flags: &["-p"],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "prlimit",
        value: &["-p", "--pid", "-o", "--output"],
        flags: &[
            "--noheadings",
            "--raw",
            "--verbose",
            "--as",
            "--core",
            "--cpu",
            "--data",
            "--fsize",
            "--locks",
            "--memlock",
            "--msgqueue",
            "--nice",
            "--nofile",
            "--nproc",
            "--rss",
            "--rtprio",
            "--rttime",
            "--sigpending",
            "--stack",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "unshare",
        value: &[
            "--map-user",
            "--map-group",
            "--setuid",
            "-S",
            "--setgid",
            "-G",
            "-R",
            "--root",
            "-w",
            "--wd",
            "--propagation",
            "--setgroups",
            "--map-users",
            "--map-groups",
        ],
        flags: &[
            "-m",
            "--mount",
            "-u",
            "--uts",
            "-i",
            "--ipc",
            "-n",
            "--net",
            "-p",
            "--pid",
            "-U",
            "--user",
            "-C",
            "--cgroup",
            "-T",
            "--time",
            "-f",
            "--fork",
            "-r",
            "--map-root-user",
            "-c",
            "--map-current-user",
            "--kill-child",
            "--mount-proc",
            "--map-auto",
            "-l",
            "--load-interp",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "nsenter",
        value: &[
            "-t", "--target", "-S", "--setuid", "-G", "--setgid", "-r", "--root", "-w", "--wd",
        ],
        flags: &[
            "-a",
            "--all",
            "-m",
            "--mount",
            "-u",
            "--uts",
            "-i",
            "--ipc",
            "-n",
            "--net",
            "-p",
            "--pid",
            "-U",
            "--user",
            "-C",
            "--cgroup",
            "-T",
            "--time",
            "-F",
            "--no-fork",
            "--preserve-credentials",
            "-Z",
            "--follow-context",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "systemd-run",
        value: &[
            "-u",
            "--unit",
            "-p",
            "--property",
            "-d",
            "--description",
            "--slice",
            "-E",
            "--setenv",
            "--uid",
            "--gid",
            "--nice",
            "-M",
            "--machine",
            "-H",
            "--host",
            "--working-directory",
            "--on-active",
            "--on-boot",
            "--on-startup",
            "--on-unit-active",
            "--on-unit-inactive",
            "--on-calendar",
            "--timer-property",
            "--path-property",
            "--socket-property",
            "--service-type",
        ],
        flags: &[
            "--user",
            "--system",
            "--scope",
            "-r",
            "--remain-after-exit",
            "--send-sighup",
            "-t",
            "--pty",
            "-P",
            "--pipe",
            "-q",
            "--quiet",
            "-G",
            "--collect",
            "-S",
            "--shell",
            "--wait",
            "--no-block",
            "--same-dir",
            "--no-ask-password",
        ],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "fakeroot",
        value: &["-l", "--lib", "--faked", "-s", "-i"],
        flags: &["-u", "--unknown-is-real"],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "catchsegv",
        value: &[],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "dbus-run-session",
        value: &["--config-file", "--dbus-daemon"],
        flags: &[],
        operands: 0,
        no_command: &[],
    },
    Wrapper {
        name: "xvfb-run",
        value: &[
            "-e",
            "--error-file",
            "-f",
            "--auth-file",
            "-n",
            "--server-num",
            "-p",
            "--xauth-protocol",
            "-s",
            "--server-args",
            "-w",
            "--wait",
        ],
        flags: &["-a", "--auto-servernum", "-l", "--listen-tcp"],
        operands: 0,
        no_command: &[],
    },
];

/// Interpreters of other languages and the options that carry inline code.
struct Interpreter {
    names: &'static [&'static str],
    language: &'static str,
    /// Options whose value is code (also clustered: `-ne` for perl).
    code: &'static [char],
    /// Long options whose value is code.
    code_long: &'static [&'static str],
    /// Short options taking a separate value that is not code.
    value: &'static [char],
}

const INTERPRETERS: &[Interpreter] = &[
    Interpreter {
        names: &["python", "python2", "python3", "pypy", "pypy3"],
        language: "python",
        code: &['c'],
        code_long: &[],
        value: &['W', 'X', 'm', 'Q'],
    },
    Interpreter {
        names: &["perl", "perl5"],
        language: "perl",
        code: &['e', 'E'],
        code_long: &[],
        value: &['I', 'M', 'm', 'x'],
    },
    Interpreter {
        names: &["ruby", "irb"],
        language: "ruby",
        code: &['e'],
        code_long: &[],
        value: &['I', 'r', 'C', 'E', 'F', 'x'],
    },
    Interpreter {
        names: &["node", "nodejs", "bun", "deno"],
        language: "javascript",
        code: &['e', 'p'],
        code_long: &["--eval", "--print"],
        value: &['r'],
    },
    Interpreter {
        names: &["php", "php-cli"],
        language: "php",
        code: &['r', 'R', 'B', 'E'],
        code_long: &[],
        value: &['c', 'd', 'f', 'z', 't'],
    },
    Interpreter {
        names: &["lua", "luajit"],
        language: "lua",
        code: &['e'],
        code_long: &[],
        value: &['l'],
    },
    Interpreter {
        names: &["Rscript"],
        language: "r",
        code: &['e'],
        code_long: &[],
        value: &[],
    },
    Interpreter {
        names: &["tclsh", "wish", "expect"],
        language: "tcl",
        code: &['c'],
        code_long: &[],
        value: &['f'],
    },
    Interpreter {
        names: &["pwsh", "powershell"],
        language: "powershell",
        code: &['c'],
        code_long: &["-Command", "-command", "-EncodedCommand", "-e", "-ec"],
        value: &[],
    },
    Interpreter {
        names: &[
            "osascript",
            "jrunscript",
            "jshell",
            "groovy",
            "scala",
            "julia",
            "guile",
            "racket",
            "sbcl",
            "clisp",
            "ocaml",
            "gdb",
        ],
        language: "other",
        code: &['e', 'c'],
        code_long: &["--eval", "-ex", "--ex", "-eval"],
        value: &[],
    },
];

/// Programs that print a line's words: `echo` of static words feeding a shell is
/// static code.
fn echo_text(args: &[Arg]) -> Option<String> {
    let name = basename(&args.first()?.text);
    if name != "echo" || args.iter().any(|a| a.dynamic.is_some()) {
        return None;
    }
    let words: Vec<&str> = args.iter().skip(1).map(|a| a.text.as_str()).collect();
    // Options change the text (`-e` decodes escapes): not followed.
    if words.first().is_some_and(|w| w.starts_with('-')) {
        return None;
    }
    Some(format!("{}\n", words.join(" ")))
}

impl Walker {
    /// Judges one evaluated command; returns what its output is as stdin.
    pub(super) fn run(&mut self, args: &[Arg], stdin: &Stdin, certain: bool) -> Stdin {
        let Some(first) = args.first() else {
            return Stdin::Pipe(Some(String::new()), "nothing".into());
        };
        let output = Stdin::Pipe(echo_text(args), format!("`{}`", word::short(&first.text)));
        if let Some(reason) = &first.dynamic {
            self.dynamic(format!("the command name is not known: {reason}"));
            return output;
        }
        let path = first.text.as_str();
        let name = basename(path).to_owned();
        if name.is_empty() {
            return output;
        }
        if self.aliases.contains(&name) && !path.contains('/') {
            self.dynamic(format!("`{name}` is an alias defined on the line"));
        }
        self.add_program(&name);
        if path.contains('/') {
            self.out.paths_run.push(path.to_owned());
        }
        let rest = args.get(1..).unwrap_or_default();
        self.urls(rest);
        // The dynamic loader runs the program named after its options.
        if name.starts_with("ld-linux") || name.starts_with("ld-musl") || name == "ld.so" {
            let mut idx = 0;
            while let Some(a) = rest.get(idx) {
                match a.text.as_str() {
                    "--library-path" | "--preload" | "--argv0" | "--audit" | "--inhibit-rpath" => {
                        idx += 2
                    }
                    t if t.starts_with("--") => idx += 1,
                    _ => break,
                }
            }
            let command = rest.get(idx..).unwrap_or_default();
            if !command.is_empty() {
                self.run(command, stdin, certain);
            }
            return output;
        }
        match name.as_str() {
            "cd" | "pushd" => {
                self.cds += 1;
                self.cwd = match rest.iter().find(|a| !a.text.starts_with('-')) {
                    None => Some("~".into()),
                    Some(a) if a.dynamic.is_none() && a.text != "-" && certain => {
                        Some(self.resolve(&a.text))
                    }
                    Some(_) => None,
                };
            }
            "popd" => {
                self.cds += 1;
                self.cwd = None;
            }
            "eval" => {
                if let Some(reason) = rest.iter().find_map(|a| a.dynamic.clone()) {
                    self.dynamic(format!("`eval` of text not known before it runs: {reason}"));
                } else {
                    let text: Vec<&str> = rest.iter().map(|a| a.text.as_str()).collect();
                    self.vars.distrust();
                    self.code(&text.join(" "), stdin.clone());
                }
                self.vars.distrust();
            }
            "source" | "." => {
                let file = rest.first().map(|a| a.text.clone()).unwrap_or_default();
                self.script(&file);
                self.dynamic(format!("`{name}` runs the shell code in `{file}`"));
                self.vars.distrust();
            }
            "alias" => {
                for a in rest {
                    if let Some((n, _)) = a.text.split_once('=') {
                        self.aliases.push(n.to_owned());
                    }
                }
                self.dynamic("an alias is defined");
            }
            "trap" => {
                if let Some(code) = rest.iter().find(|a| !a.text.starts_with('-')) {
                    self.code_arg(code, "trap", stdin);
                }
            }
            "hash" if rest.iter().any(|a| a.text.starts_with("-p")) => {
                self.dynamic("`hash -p` maps a name to another program");
            }
            "enable" => self.dynamic("`enable` loads or changes builtins"),
            "let" => {
                // Each argument in turn, as bash evaluates them.
                for a in rest {
                    let mut subs = Substitutions::new();
                    word::arithmetic(&a.text, &self.vars, &mut subs);
                    self.substitutions(subs);
                    self.vars.distrust();
                    for name in word::assigned_in_arithmetic(&a.text) {
                        self.vars.set_integer(&name);
                    }
                }
            }
            "read" | "mapfile" | "readarray" | "getopts" => self.vars.distrust(),
            "printf" if rest.iter().any(|a| a.text.starts_with("-v")) => self.vars.distrust(),
            "declare" | "typeset" | "local" | "export" | "readonly" => {
                for a in rest {
                    if let Some((n, v)) = a.text.split_once('=') {
                        self.risky_variable(n);
                        self.code_in_value(n, v);
                    }
                    match a.text.split_once('=') {
                        Some((n, v)) if a.dynamic.is_none() && certain && is_name(n) => {
                            self.vars.set(n, Var::Known(v.to_owned()));
                        }
                        Some((n, _)) if is_name(n) => self.vars.set(n, Var::Unknown),
                        _ if a.text.starts_with('-') && a.text.contains('i') => {
                            // Every later assignment to these names is evaluated as
                            // arithmetic, wherever it is.
                            self.dynamic(format!(
                                "`{name} {}` gives variables the integer attribute: what is later assigned to them is evaluated as arithmetic",
                                a.text
                            ));
                            self.vars.distrust();
                        }
                        _ if a.text.starts_with('-') && a.text.contains(['n', 'a', 'A']) => {
                            self.vars.distrust();
                        }
                        _ => {}
                    }
                }
            }
            "unset" => {
                for a in rest.iter().filter(|a| !a.text.starts_with('-')) {
                    if a.dynamic.is_some() {
                        self.vars.distrust();
                    } else if certain {
                        self.vars.set(&a.text, Var::Known(String::new()));
                    } else {
                        self.vars.set(&a.text, Var::Unknown);
                    }
                }
            }
            "env" => self.env(rest, stdin),
            "xargs" => self.xargs(rest),
            "find" => self.find(rest),
            "su" | "runuser" | "sg" => self.su(&name, rest, stdin),
            "script" => self.script_command(rest, stdin),
            "watch" => self.watch(rest, stdin),
            "flock" => self.flock(rest, stdin),
            "busybox" | "toybox" => {
                if !rest.is_empty() {
                    self.run(rest, stdin, certain);
                }
            }
            "ssh" => self.ssh(rest),
            "tee" => {
                for a in rest.iter().filter(|a| !a.text.starts_with('-')) {
                    self.write_arg(a);
                }
            }
            "dd" => {
                for a in rest {
                    if let Some(f) = a.text.strip_prefix("of=") {
                        self.write_arg(&Arg {
                            text: f.to_owned(),
                            dynamic: a.dynamic.clone(),
                        });
                    }
                }
            }
            // A link and what it points to are both written through it later.
            "ln" => {
                for a in rest.iter().filter(|a| !a.text.starts_with('-')) {
                    self.write_arg(&a.clone());
                }
            }
            "cp" | "mv" | "install" | "rsync" => {
                if name == "rsync" && rest.iter().any(|a| a.text == "--server") {
                    self.rsync_server(rest);
                } else {
                    self.copy_destination(rest);
                }
            }
            // `scp -t DEST`: the server side of an upload writes into DEST the files
            // named in its stream. The gateway reads those names when `scp -t` is the
            // whole exec line (see `Classified::scp_sink`).
            "scp"
                if rest.iter().any(|a| {
                    a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('t')
                }) =>
            {
                let dest = rest.iter().rfind(|a| !a.text.starts_with('-')).cloned();
                if let Some(dest) = &dest {
                    self.write_arg(dest);
                }
                // Run once, at the top level, reading the channel.
                let fed_by_channel = self.depth == 1
                    && self.loops == 0
                    && matches!(self.stdin_of(stdin), Stdin::Inherit);
                self.scp_sinks.push(super::ScpSinkSeen {
                    dest: dest.map(|d| self.resolve(&d.text)),
                    fed_by_channel,
                });
            }
            "socat" => {
                for a in rest {
                    for part in a.text.split(['!', ',']) {
                        let upper = part.to_ascii_uppercase();
                        if let Some(code) = upper
                            .strip_prefix("EXEC:")
                            .or_else(|| upper.strip_prefix("SYSTEM:"))
                            .map(|_| part.split_once(':').map(|(_, c)| c).unwrap_or_default())
                        {
                            self.code(code, Stdin::Pipe(None, "the network".into()));
                        }
                    }
                }
            }
            "nc" | "ncat" | "netcat" => {
                let mut it = rest.iter();
                while let Some(a) = it.next() {
                    match a.text.as_str() {
                        "-e" | "--exec" => {
                            if let Some(p) = it.next() {
                                self.add_program(&p.text);
                            }
                        }
                        "-c" | "--sh-exec" | "--lua-exec" => {
                            if let Some(code) = it.next() {
                                self.code_arg(code, "nc", &Stdin::Pipe(None, "the network".into()));
                            }
                        }
                        _ => {}
                    }
                }
            }
            "awk" | "gawk" | "mawk" | "nawk" => self.awk(rest),
            "vi" | "vim" | "nvim" | "ex" | "view" => {
                if rest.iter().any(|a| {
                    a.text == "-c" || a.text.starts_with('+') || a.text == "--cmd" || a.text == "-S"
                }) {
                    self.inline("vim");
                }
                // Ex mode reads editor commands (`!cmd` runs a shell) from stdin.
                if name == "ex"
                    || rest
                        .iter()
                        .any(|a| matches!(a.text.as_str(), "-e" | "-E" | "-s" | "-es" | "-Es"))
                {
                    self.fed_stdin(&name, stdin, "vim");
                }
            }
            // Line editors read commands (`!cmd` runs a shell) from stdin.
            "ed" | "red" => self.fed_stdin(&name, stdin, "ed"),
            "sqlite3" | "sqlite" => {
                // `sqlite3 [options] [DB [SQL...]]`: SQL and dot commands (`.shell`,
                // `.system`, `.output FILE`) after the database, or from stdin.
                let operands: Vec<&Arg> =
                    rest.iter().filter(|a| !a.text.starts_with('-')).collect();
                if operands.len() > 1
                    || rest
                        .iter()
                        .any(|a| matches!(a.text.as_str(), "-cmd" | "--cmd" | "-init" | "--init"))
                {
                    self.inline("sqlite");
                } else {
                    self.fed_stdin(&name, stdin, "sqlite");
                }
            }
            "git" => self.git(rest),
            "tar" | "gtar" | "bsdtar" => self.tar(rest, stdin),
            "make" | "gmake" => {
                if rest
                    .iter()
                    .any(|a| a.text.starts_with("--eval") || a.text == "-E")
                {
                    self.inline("make");
                }
                let file = rest
                    .iter()
                    .position(|a| matches!(a.text.as_str(), "-f" | "--file" | "--makefile"))
                    .and_then(|i| rest.get(i + 1))
                    .map_or_else(|| "Makefile".to_owned(), |a| a.text.clone());
                self.script(&file);
            }
            "zip" => {
                let mut it = rest.iter();
                while let Some(a) = it.next() {
                    if (a.text == "-TT" || a.text == "--unzip-command")
                        && let Some(code) = it.next()
                    {
                        self.code_arg(&code.clone(), "zip -TT", &Stdin::Inherit);
                    }
                    if let Some(code) = a.text.strip_prefix("--unzip-command=") {
                        self.code_arg(
                            &Arg {
                                text: code.to_owned(),
                                dynamic: a.dynamic.clone(),
                            },
                            "zip -TT",
                            &Stdin::Inherit,
                        );
                    }
                }
            }
            "run-parts" => {
                if let Some(dir) = rest.iter().rfind(|a| !a.text.starts_with('-')) {
                    self.script(&format!("{}/*", dir.text));
                    self.dynamic(format!("`run-parts` runs every file in `{}`", dir.text));
                }
            }
            "sed" | "gsed" => self.sed(rest),
            "crontab" | "at" | "batch" => {
                // Schedules code that is not on the line.
                if rest
                    .iter()
                    .all(|a| a.text.starts_with('-') && a.text != "-")
                    || rest.is_empty()
                {
                    self.fed_stdin(&name, stdin, "shell");
                } else {
                    self.dynamic(format!("`{name}` schedules code read from elsewhere"));
                }
            }
            _ if SHELLS.contains(&name.as_str()) => self.shell(&name, rest, stdin),
            _ => {
                if let Some(w) = WRAPPERS.iter().find(|w| w.name == name) {
                    self.wrapper(w, rest, stdin);
                } else if let Some(i) = INTERPRETERS.iter().find(|i| {
                    i.names.contains(&name.as_str())
                        || python_version(&name) && i.language == "python"
                }) {
                    self.interpreter(i, &name, rest, stdin);
                } else if self.is_function(&name) {
                    // Its body was judged where it was defined.
                }
            }
        }
        output
    }

    /// Arguments that are URLs (`scheme://…`, also as `--option=URL`).
    fn urls(&mut self, args: &[Arg]) {
        for a in args {
            let t = a.text.split_once('=').map_or(a.text.as_str(), |(k, v)| {
                if k.starts_with('-') {
                    v
                } else {
                    a.text.as_str()
                }
            });
            if let Some((scheme, rest)) = t.split_once("://")
                && !scheme.is_empty()
                && !rest.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
                && !self.out.urls.iter().any(|u| u == t)
            {
                self.out.urls.push(t.to_owned());
            }
        }
    }

    /// git: `-c` settings that run commands (aliases with `!`, pagers, editors,
    /// hooks, ssh commands) are inline code.
    fn git(&mut self, rest: &[Arg]) {
        const RUNS: &[&str] = &[
            "alias.",
            "core.pager",
            "core.editor",
            "core.sshcommand",
            "core.fsmonitor",
            "core.hookspath",
            "core.gitproxy",
            "core.askpass",
            "diff.external",
            "pager.",
            "sequence.editor",
            "credential.helper",
            "uploadpack.packobjectshook",
            "filter.",
            "merge.",
            "diff.",
            "gpg.program",
            "ssh.variant",
            "protocol.ext.allow",
        ];
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            let setting = if a.text == "-c" {
                it.next().map(|v| v.text.to_ascii_lowercase())
            } else {
                a.text
                    .strip_prefix("--config-env=")
                    .map(str::to_ascii_lowercase)
            };
            if let Some(s) = setting
                && RUNS.iter().any(|r| s.starts_with(r))
            {
                self.inline("git");
            }
        }
    }

    /// tar: options whose value is a command, and where an extraction writes.
    fn tar(&mut self, rest: &[Arg], stdin: &Stdin) {
        const CODE: &[&str] = &[
            "--to-command",
            "--use-compress-program",
            "--rsh-command",
            "--info-script",
            "--new-volume-script",
            "-I",
            "-F",
        ];
        let extract = rest.iter().any(|a| {
            a.text == "--extract"
                || a.text == "--get"
                || (!a.text.starts_with("--") && a.text.trim_start_matches('-').starts_with(['x']))
                || (a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('x'))
        });
        let mut dir: Option<Arg> = None;
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            let t = a.text.as_str();
            if let Some(action) = t.strip_prefix("--checkpoint-action=") {
                if let Some(code) = action.strip_prefix("exec=") {
                    self.code_arg(
                        &Arg {
                            text: code.to_owned(),
                            dynamic: a.dynamic.clone(),
                        },
                        "tar",
                        stdin,
                    );
                }
                continue;
            }
            if let Some((k, v)) = t.split_once('=')
                && CODE.contains(&k)
            {
                self.code_arg(
                    &Arg {
                        text: v.to_owned(),
                        dynamic: a.dynamic.clone(),
                    },
                    "tar",
                    stdin,
                );
                continue;
            }
            if CODE.contains(&t) {
                if let Some(v) = it.next() {
                    self.code_arg(&v.clone(), "tar", stdin);
                }
                continue;
            }
            if t == "-C" || t == "--directory" {
                dir = it.next().cloned();
                continue;
            }
            if let Some(d) = t.strip_prefix("--directory=") {
                dir = Some(Arg {
                    text: d.to_owned(),
                    dynamic: a.dynamic.clone(),
                });
            }
        }
        if extract {
            self.write_arg(&dir.unwrap_or_else(|| Arg::known(".")));
        }
    }

    fn is_function(&self, name: &str) -> bool {
        self.functions.iter().any(|f| f == name)
    }

    fn write_arg(&mut self, a: &Arg) {
        if let Some(reason) = &a.dynamic {
            self.dynamic(format!("a file written: {reason}"));
        }
        self.write(&a.text.clone());
    }

    /// `rsync --server ...`: the server side of a transfer. A receiving server writes
    /// the files named in rsync's stream, which the gateway does not decode, into the
    /// destination on its command line — or, with `-s`, a destination that is itself
    /// in the stream. Even a plain upload into a directory writes whatever name the
    /// client sends (`rsync .bashrc host:` writes `~/.bashrc`), so every upload is
    /// dynamic; downloads (`--sender`) write nothing on the host.
    fn rsync_server(&mut self, rest: &[Arg]) {
        if rest.iter().any(|a| a.text == "--sender") {
            return;
        }
        self.copy_destination(rest);
        // Short options cluster before `e`, whose value (the capabilities) ends the
        // cluster: `-logDtpre.iLsfxCIvu`.
        let flags: String = rest
            .iter()
            .filter(|a| a.text.starts_with('-') && !a.text.starts_with("--"))
            .map(|a| a.text[1..].split('e').next().unwrap_or_default())
            .collect();
        if flags.contains('s')
            || rest.iter().any(|a| {
                a.text.starts_with("--secluded-args") || a.text.starts_with("--protect-args")
            })
        {
            self.dynamic("an rsync upload with its arguments in the stream (`-s`): where it writes is not on the command line");
        } else {
            self.dynamic("an rsync upload writes the files named in its stream, which the gateway does not decode (scp and sftp uploads are judged file by file)");
        }
    }

    /// The destination of `cp`/`mv`/`install`/`ln`/`rsync`: `-t DIR` or the last operand.
    fn copy_destination(&mut self, rest: &[Arg]) {
        let mut operands: Vec<&Arg> = Vec::new();
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            if a.text == "-t" || a.text == "--target-directory" {
                if let Some(d) = it.next() {
                    self.write_arg(&d.clone());
                }
                return;
            }
            if let Some(d) = a.text.strip_prefix("--target-directory=") {
                self.write_arg(&Arg {
                    text: d.to_owned(),
                    dynamic: a.dynamic.clone(),
                });
                return;
            }
            if a.text.starts_with('-') && a.text.len() > 1 {
                // Options with values (`-m MODE`, `-o OWNER`, `-S SUFFIX`, `-e CMD`).
                if matches!(
                    a.text.as_str(),
                    "-m" | "-o" | "-g" | "-S" | "--suffix" | "-e" | "--rsh"
                ) && let Some(v) = it.next()
                    && (a.text == "-e" || a.text == "--rsh")
                {
                    self.code_arg(v, "rsync -e", &Stdin::Inherit);
                }
                if let Some(code) = a.text.strip_prefix("--rsh=") {
                    self.code_arg(
                        &Arg {
                            text: code.to_owned(),
                            dynamic: a.dynamic.clone(),
                        },
                        "rsync --rsh",
                        &Stdin::Inherit,
                    );
                }
                continue;
            }
            operands.push(a);
        }
        if operands.len() >= 2
            && let Some(last) = operands.last()
        {
            let last = (*last).clone();
            // A remote rsync destination (`host:path`) is not a local file.
            if !last.text.contains(':') || last.text.starts_with('/') {
                self.write_arg(&last);
            }
        }
    }

    /// A shell's `-c` text (or other code argument): parsed when static.
    fn code_arg(&mut self, code: &Arg, what: &str, stdin: &Stdin) {
        match &code.dynamic {
            Some(reason) => {
                self.dynamic(format!("the code run by `{what}` is not known: {reason}"))
            }
            None => {
                self.depth += 1;
                self.code(&code.text, stdin.clone());
                self.depth -= 1;
            }
        }
    }

    /// A shell: `-c` code, a script file, or code read from stdin.
    fn shell(&mut self, name: &str, rest: &[Arg], stdin: &Stdin) {
        let mut command = false;
        let mut from_stdin = false;
        let mut i = 0;
        while let Some(a) = rest.get(i) {
            if let Some(reason) = &a.dynamic {
                self.dynamic(format!("an argument of `{name}` is not known: {reason}"));
                return;
            }
            let t = a.text.as_str();
            if t == "--" || t == "-" {
                i += 1;
                if t == "-" {
                    from_stdin = true;
                }
                break;
            }
            if matches!(t, "--rcfile" | "--init-file") {
                if let Some(f) = rest.get(i + 1) {
                    self.script(&f.text);
                }
                i += 2;
                continue;
            }
            if t.starts_with("--") {
                if t == "--command" {
                    command = true;
                }
                i += 1;
                continue;
            }
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
                let opts = t.get(1..).unwrap_or_default();
                if opts.contains('c') {
                    command = true;
                }
                if opts.contains('s') {
                    from_stdin = true;
                }
                // `-o name`, `-O name` take the next word.
                let takes = opts.chars().filter(|c| matches!(c, 'o' | 'O')).count();
                i += 1 + takes;
                continue;
            }
            break;
        }
        let operands = rest.get(i..).unwrap_or_default();
        if command {
            match operands.first() {
                Some(code) => self.code_arg(code, name, stdin),
                None => self.dynamic(format!("`{name} -c` without code")),
            }
            return;
        }
        match operands.first() {
            Some(file) if !from_stdin && is_stream(&file.text) => {
                self.fed(format!("`{name}` reads its code from `{}`", file.text));
            }
            Some(file) if !from_stdin => {
                self.script(&file.text);
            }
            _ => self.fed_stdin(name, stdin, "shell"),
        }
    }

    /// A shell or interpreter reading its code from stdin.
    fn fed_stdin(&mut self, name: &str, stdin: &Stdin, language: &str) {
        let stdin = self.stdin_of(stdin);
        let shell = language == "shell";
        match stdin {
            Stdin::Inherit => match self.origin() {
                Origin::Exec => {
                    self.fed(format!("`{name}` reads its code from the channel's input"))
                }
                // Typed lines go on being judged one by one; another language is not.
                Origin::ShellLine if shell => {}
                Origin::ShellLine => self.inline(language),
            },
            Stdin::Pipe(Some(text), _) | Stdin::Text(Some(text)) => {
                if shell {
                    self.depth += 1;
                    self.code(&text, Stdin::Text(None));
                    self.depth -= 1;
                } else {
                    self.inline(language);
                }
            }
            Stdin::Pipe(None, from) => self.fed(format!("`{name}` reads its code from {from}")),
            Stdin::Text(None) => {
                self.fed(format!(
                    "`{name}` reads its code from a here-document with expansions"
                ));
            }
            Stdin::File(f) => {
                self.script(&f);
                self.fed(format!("`{name}` reads its code from the file `{f}`"));
            }
        }
    }

    fn interpreter(&mut self, i: &Interpreter, name: &str, rest: &[Arg], stdin: &Stdin) {
        if rest.iter().any(|a| {
            matches!(
                a.text.as_str(),
                "-V" | "--version" | "-VV" | "-h" | "--help" | "-v" | "-version"
            )
        }) && rest.len() == 1
        {
            return;
        }
        let mut idx = 0;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if i.code_long
                .iter()
                .any(|l| t == *l || t.starts_with(&format!("{l}=")))
            {
                self.inline(i.language);
                return;
            }
            if t == "--" {
                idx += 1;
                break;
            }
            if t == "-" {
                self.fed_stdin(name, stdin, i.language);
                return;
            }
            if t.starts_with("--") {
                idx += 1;
                continue;
            }
            if let Some(opts) = t.strip_prefix('-')
                && !opts.is_empty()
            {
                let mut takes_next = false;
                for c in opts.chars() {
                    if i.code.contains(&c) {
                        self.inline(i.language);
                        return;
                    }
                    if i.value.contains(&c) {
                        if i.language == "python" && c == 'm' {
                            let module = if opts.len() > 1 {
                                opts.split_once('m')
                                    .map(|(_, m)| m.to_owned())
                                    .unwrap_or_default()
                            } else {
                                rest.get(idx + 1)
                                    .map(|m| m.text.clone())
                                    .unwrap_or_default()
                            };
                            self.script(&format!("{name} -m {module}"));
                            return;
                        }
                        takes_next = opts.ends_with(c);
                        break;
                    }
                }
                idx += if takes_next { 2 } else { 1 };
                continue;
            }
            break;
        }
        match rest.get(idx) {
            Some(file) if is_stream(&file.text) => {
                self.fed(format!("`{name}` reads its code from `{}`", file.text));
            }
            Some(file) => {
                if let Some(reason) = &file.dynamic {
                    self.dynamic(format!("the script `{name}` runs is not known: {reason}"));
                }
                self.script(&file.text);
            }
            None => self.fed_stdin(name, stdin, i.language),
        }
    }

    /// A wrapper: skips its options and operands, then judges the command it runs.
    fn wrapper(&mut self, w: &Wrapper, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        let mut operands = w.operands;
        let mut shell_form = false;
        while let Some(a) = rest.get(idx) {
            if let Some(reason) = &a.dynamic {
                self.dynamic(format!(
                    "an argument of `{}` is not known: {reason}",
                    w.name
                ));
                return;
            }
            let t = a.text.as_str();
            if t == "--" {
                idx += 1;
                break;
            }
            if w.no_command.contains(&t) {
                return;
            }
            if t.starts_with("--") {
                let key = t.split_once('=').map_or(t, |(k, _)| k);
                if w.value.contains(&key) {
                    idx += if t.contains('=') { 1 } else { 2 };
                } else if w.flags.contains(&key) {
                    idx += 1;
                } else if w.name == "sudo" && matches!(key, "--login" | "--shell") {
                    shell_form = true;
                    idx += 1;
                } else {
                    self.dynamic(format!("`{}` option `{t}` is not known", w.name));
                    return;
                }
                continue;
            }
            if t.starts_with('-') && t.len() > 1 {
                if w.name == "nice"
                    && t.get(1..)
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                {
                    idx += 1;
                    continue;
                }
                if w.value.contains(&t) {
                    idx += 2;
                    continue;
                }
                if w.flags.contains(&t) {
                    idx += 1;
                    continue;
                }
                // A cluster: `-nu root`, `-uroot`.
                let mut consumed = 1;
                let mut ok = true;
                for (pos, c) in t.char_indices().skip(1) {
                    let opt = format!("-{c}");
                    if w.no_command.contains(&opt.as_str()) {
                        return;
                    }
                    if w.name == "sudo" && (c == 'i' || c == 's') {
                        shell_form = true;
                        continue;
                    }
                    if w.value.contains(&opt.as_str()) {
                        if pos + c.len_utf8() == t.len() {
                            consumed = 2;
                        }
                        break;
                    }
                    if !w.flags.contains(&opt.as_str()) {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    self.dynamic(format!("`{}` option `{t}` is not known", w.name));
                    return;
                }
                idx += consumed;
                continue;
            }
            if (w.name == "sudo" || w.name == "doas")
                && let Some((n, _)) = t.split_once('=')
                && is_name(n)
            {
                self.risky_variable(n);
                idx += 1;
                continue;
            }
            if operands > 0 {
                operands -= 1;
                idx += 1;
                continue;
            }
            break;
        }
        let command = rest.get(idx..).unwrap_or_default();
        if command.is_empty() {
            if shell_form || matches!(w.name, "chroot" | "nsenter" | "unshare") {
                // `sudo -s`, `sudo -i`, `chroot DIR`: an interactive shell.
                self.fed_stdin(w.name, stdin, "shell");
            }
            return;
        }
        if shell_form {
            // `sudo -s cmd args`: the words are joined and run by the user's shell.
            let text: Vec<&str> = command.iter().map(|a| a.text.as_str()).collect();
            let code = Arg::known(text.join(" "));
            self.code_arg(&code, w.name, stdin);
            return;
        }
        self.run(command, stdin, false);
    }

    /// `env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... [COMMAND [ARG]...]`.
    fn env(&mut self, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        while let Some(a) = rest.get(idx) {
            if let Some(reason) = &a.dynamic {
                self.dynamic(format!("an argument of `env` is not known: {reason}"));
                return;
            }
            let t = a.text.as_str();
            let split = if matches!(t, "-S" | "--split-string") {
                idx += 1;
                rest.get(idx).map(|a| a.text.clone())
            } else if let Some(s) = t.strip_prefix("--split-string=") {
                Some(s.to_owned())
            } else {
                t.strip_prefix("-S")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            if let Some(text) = split {
                // `env -S 'prog args'`: the string is split into words (quotes kept
                // as a shell would), followed by the remaining arguments.
                let mut words = Substitutions::new();
                let mut args = split_words(&text, &self.vars, &mut words);
                if !words.is_empty() {
                    self.dynamic("`env -S` text with substitutions");
                }
                args.extend(rest.get(idx + 1..).unwrap_or_default().iter().cloned());
                self.run_env_rest(&args, stdin);
                return;
            }
            if t == "--" {
                idx += 1;
                break;
            }
            if matches!(t, "-u" | "--unset" | "-C" | "--chdir" | "-P") {
                idx += 2;
                continue;
            }
            if t.starts_with('-') && t.len() > 1 {
                let known = t.starts_with("--unset=")
                    || t.starts_with("--chdir=")
                    || t.starts_with("--default-signal")
                    || t.starts_with("--ignore-signal")
                    || t.starts_with("--block-signal")
                    || matches!(
                        t,
                        "-i" | "--ignore-environment" | "-0" | "--null" | "-v" | "--debug" | "-"
                    )
                    || t.starts_with("-u")
                    || t.starts_with("-C");
                if !known {
                    self.dynamic(format!("`env` option `{t}` is not known"));
                    return;
                }
                idx += 1;
                continue;
            }
            if let Some((n, _)) = t.split_once('=') {
                self.risky_variable(n);
                idx += 1;
                continue;
            }
            break;
        }
        self.run_env_rest(rest.get(idx..).unwrap_or_default(), stdin);
    }

    fn run_env_rest(&mut self, args: &[Arg], stdin: &Stdin) {
        // Leading assignments after `-S` text.
        let skip = args
            .iter()
            .take_while(|a| {
                a.dynamic.is_none() && a.text.split_once('=').is_some_and(|(n, _)| is_name(n))
            })
            .count();
        for a in args.iter().take(skip) {
            if let Some((n, _)) = a.text.split_once('=') {
                self.risky_variable(n);
            }
        }
        let command = args.get(skip..).unwrap_or_default();
        if !command.is_empty() {
            self.run(command, stdin, false);
        }
    }

    /// `xargs [options] [command [initial-arguments]]`: arguments come from stdin.
    fn xargs(&mut self, rest: &[Arg]) {
        let value = [
            "-a",
            "--arg-file",
            "-d",
            "--delimiter",
            "-E",
            "-L",
            "--max-lines",
            "-n",
            "--max-args",
            "-P",
            "--max-procs",
            "-s",
            "--max-chars",
            "--process-slot-var",
        ];
        let mut replace: Option<String> = None;
        let mut idx = 0;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if t == "--" {
                idx += 1;
                break;
            }
            if t == "-I" {
                replace = rest.get(idx + 1).map(|r| r.text.clone());
                idx += 2;
                continue;
            }
            if let Some(r) = t
                .strip_prefix("-I")
                .or_else(|| t.strip_prefix("--replace="))
            {
                replace = Some(r.to_owned());
                idx += 1;
                continue;
            }
            if t == "-i" || t == "--replace" {
                replace = Some("{}".into());
                idx += 1;
                continue;
            }
            if let Some(r) = t.strip_prefix("-i") {
                replace = Some(r.to_owned());
                idx += 1;
                continue;
            }
            if value.contains(&t) {
                idx += 2;
                continue;
            }
            if t.starts_with('-') && t.len() > 1 {
                idx += 1;
                continue;
            }
            break;
        }
        let mut command: Vec<Arg> = rest.get(idx..).unwrap_or_default().to_vec();
        if command.is_empty() {
            command.push(Arg::known("echo"));
        }
        let from_stdin = "text read from stdin by `xargs`".to_owned();
        match &replace {
            Some(r) if !r.is_empty() => {
                for a in &mut command {
                    if a.text.contains(r.as_str()) {
                        a.dynamic.get_or_insert(from_stdin.clone());
                    }
                }
            }
            _ => command.push(Arg {
                text: "…".into(),
                dynamic: Some(from_stdin),
            }),
        }
        self.run(&command, &Stdin::Pipe(None, "`xargs`".into()), false);
    }

    /// `find … -exec cmd … ;` (and `-execdir`, `-ok`, `-okdir`); `-fprint` files.
    fn find(&mut self, rest: &[Arg]) {
        let mut idx = 0;
        while let Some(a) = rest.get(idx) {
            match a.text.as_str() {
                "-exec" | "-execdir" | "-ok" | "-okdir" => {
                    let start = idx + 1;
                    let mut end = start;
                    while let Some(b) = rest.get(end) {
                        if b.text == ";" || b.text == "+" {
                            break;
                        }
                        end += 1;
                    }
                    let mut command: Vec<Arg> = rest.get(start..end).unwrap_or_default().to_vec();
                    for c in &mut command {
                        if c.text.contains("{}") {
                            c.dynamic
                                .get_or_insert("a file name found by `find`".into());
                        }
                    }
                    if !command.is_empty() {
                        self.run(&command, &Stdin::Inherit, false);
                    }
                    idx = end + 1;
                }
                "-fprint" | "-fprint0" | "-fls" | "-fprintf" => {
                    if let Some(f) = rest.get(idx + 1) {
                        self.write_arg(&f.clone());
                    }
                    idx += 2;
                }
                _ => idx += 1,
            }
        }
    }

    /// `su [options] [-] [user [args]]` (`-c CMD`), `runuser -u USER -- CMD`,
    /// `sg GROUP [-c] CMD`.
    fn su(&mut self, name: &str, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        let mut code: Option<Arg> = None;
        let mut direct = false;
        let mut operands: Vec<&Arg> = Vec::new();
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if matches!(t, "-c" | "--command" | "-C" | "--session-command") {
                code = rest.get(idx + 1).cloned();
                idx += 2;
                continue;
            }
            if let Some(c) = t
                .strip_prefix("--command=")
                .or_else(|| t.strip_prefix("--session-command="))
            {
                code = Some(Arg {
                    text: c.to_owned(),
                    dynamic: a.dynamic.clone(),
                });
                idx += 1;
                continue;
            }
            if name == "runuser" && matches!(t, "-u" | "--user") {
                direct = true;
                idx += 2;
                continue;
            }
            if matches!(
                t,
                "-s" | "--shell"
                    | "-g"
                    | "--group"
                    | "-G"
                    | "--supp-group"
                    | "-w"
                    | "--whitelist-environment"
            ) {
                idx += 2;
                continue;
            }
            if t == "--" {
                idx += 1;
                if direct {
                    break;
                }
                continue;
            }
            if t.starts_with('-') {
                idx += 1;
                continue;
            }
            if direct {
                break;
            }
            operands.push(a);
            idx += 1;
            if name == "sg" && operands.len() == 1 && code.is_none() {
                // `sg group cmd`: the rest is one command line.
                let text: Vec<&str> = rest
                    .get(idx..)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect();
                if !text.is_empty() {
                    code = Some(Arg::known(text.join(" ")));
                }
                break;
            }
        }
        if direct {
            let command = rest.get(idx..).unwrap_or_default();
            if command.is_empty() {
                self.fed_stdin(name, stdin, "shell");
            } else {
                self.run(command, stdin, false);
            }
            return;
        }
        match code {
            Some(c) => self.code_arg(&c, name, stdin),
            None => self.fed_stdin(name, stdin, "shell"),
        }
    }

    /// `script [options] [-c CMD] [file]`.
    fn script_command(&mut self, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if let Some(c) = t.strip_prefix("--command=") {
                let code = Arg {
                    text: c.to_owned(),
                    dynamic: a.dynamic.clone(),
                };
                self.code_arg(&code, "script", stdin);
                return;
            }
            if t == "--command" || (t.starts_with('-') && !t.starts_with("--") && t.ends_with('c'))
            {
                match rest.get(idx + 1) {
                    Some(c) => self.code_arg(c, "script", stdin),
                    None => self.dynamic("`script -c` without code"),
                }
                return;
            }
            if let Some(pos) = t
                .find('c')
                .filter(|_| t.starts_with('-') && !t.starts_with("--"))
            {
                let code = Arg {
                    text: t.get(pos + 1..).unwrap_or_default().to_owned(),
                    dynamic: a.dynamic.clone(),
                };
                self.code_arg(&code, "script", stdin);
                return;
            }
            idx += if matches!(
                t,
                "-E" | "--echo"
                    | "-m"
                    | "--logging-format"
                    | "-T"
                    | "--log-timing"
                    | "-O"
                    | "--log-out"
                    | "-I"
                    | "--log-in"
                    | "-B"
                    | "--log-io"
            ) {
                2
            } else {
                1
            };
        }
        self.fed_stdin("script", stdin, "shell");
    }

    /// `watch [options] command`: the words are joined and run by `sh -c` (`-x`: exec).
    fn watch(&mut self, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        let mut exec = false;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if matches!(t, "-n" | "--interval" | "-q" | "--equexit") {
                idx += 2;
                continue;
            }
            if t == "-x" || t == "--exec" {
                exec = true;
                idx += 1;
                continue;
            }
            if t.starts_with('-') && t.len() > 1 {
                idx += 1;
                continue;
            }
            break;
        }
        let command = rest.get(idx..).unwrap_or_default();
        if command.is_empty() {
            return;
        }
        if exec {
            self.run(command, stdin, false);
        } else {
            let text: Vec<&str> = command.iter().map(|a| a.text.as_str()).collect();
            if let Some(reason) = command.iter().find_map(|a| a.dynamic.clone()) {
                self.dynamic(format!("the command `watch` runs is not known: {reason}"));
                return;
            }
            self.code_arg(&Arg::known(text.join(" ")), "watch", stdin);
        }
    }

    /// `flock [options] FILE -c CMD` or `flock [options] FILE CMD ARGS`.
    fn flock(&mut self, rest: &[Arg], stdin: &Stdin) {
        let mut idx = 0;
        let mut file_seen = false;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if matches!(t, "-c" | "--command") {
                if let Some(c) = rest.get(idx + 1) {
                    self.code_arg(c, "flock", stdin);
                }
                return;
            }
            if matches!(t, "-w" | "--timeout" | "-E" | "--conflict-exit-code") {
                idx += 2;
                continue;
            }
            if t.starts_with('-') && t.len() > 1 {
                idx += 1;
                continue;
            }
            if !file_seen {
                file_seen = true;
                idx += 1;
                continue;
            }
            break;
        }
        let command = rest.get(idx..).unwrap_or_default();
        if !command.is_empty() {
            self.run(command, stdin, false);
        }
    }

    /// `ssh [options] host [command]`: the remote command is a command line too, and
    /// `-o ProxyCommand=…`/`LocalCommand` run locally.
    fn ssh(&mut self, rest: &[Arg]) {
        const WITH_VALUE: &[&str] = &[
            "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o",
            "-p", "-Q", "-R", "-S", "-W", "-w", "-B",
        ];
        let mut idx = 0;
        let mut host_seen = false;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if !host_seen && t.starts_with('-') && t.len() > 1 {
                let value = if WITH_VALUE.contains(&t) {
                    rest.get(idx + 1).map(|v| v.text.clone())
                } else {
                    None
                };
                let option = if t == "-o" {
                    value.clone()
                } else {
                    t.strip_prefix("-o").map(str::to_owned)
                };
                if let Some(o) = option {
                    let lower = o.to_ascii_lowercase();
                    if let Some(code) = ["proxycommand", "localcommand", "knownhostscommand"]
                        .iter()
                        .find_map(|k| {
                            lower
                                .strip_prefix(k)
                                .map(|_| o.get(k.len()..).unwrap_or_default())
                        })
                    {
                        let code = code.trim_start_matches([' ', '=']);
                        self.code(code, Stdin::Inherit);
                    }
                }
                idx += if value.is_some() { 2 } else { 1 };
                continue;
            }
            if !host_seen {
                host_seen = true;
                idx += 1;
                continue;
            }
            break;
        }
        let remote = rest.get(idx..).unwrap_or_default();
        if remote.is_empty() {
            // An interactive login on another host: it reads its commands from here.
            if host_seen {
                self.fed_stdin("ssh", &Stdin::Inherit, "shell");
            }
            return;
        }
        let text: Vec<&str> = remote.iter().map(|a| a.text.as_str()).collect();
        if let Some(reason) = remote.iter().find_map(|a| a.dynamic.clone()) {
            self.dynamic(format!(
                "the remote command of `ssh` is not known: {reason}"
            ));
        }
        self.depth += 1;
        self.code(&text.join(" "), Stdin::Pipe(None, "the local side".into()));
        self.depth -= 1;
    }

    /// awk: a program that runs commands (`system`, pipes, `getline` from a command)
    /// or writes files is inline code; the command strings in it are judged.
    fn awk(&mut self, rest: &[Arg]) {
        let mut idx = 0;
        let mut program: Option<&Arg> = None;
        while let Some(a) = rest.get(idx) {
            let t = a.text.as_str();
            if matches!(t, "-f" | "--file") {
                if let Some(f) = rest.get(idx + 1) {
                    self.script(&f.text);
                }
                self.inline("awk");
                return;
            }
            if matches!(t, "-e" | "--source") {
                program = rest.get(idx + 1);
                break;
            }
            if matches!(
                t,
                "-F" | "-v"
                    | "--assign"
                    | "--field-separator"
                    | "-i"
                    | "--include"
                    | "-l"
                    | "--load"
            ) {
                idx += 2;
                continue;
            }
            if t == "--" {
                program = rest.get(idx + 1);
                break;
            }
            if t.starts_with('-') && t.len() > 1 {
                idx += 1;
                continue;
            }
            program = Some(a);
            break;
        }
        let Some(p) = program else { return };
        if p.dynamic.is_some() {
            self.inline("awk");
            return;
        }
        let text = &p.text;
        if text.contains("system")
            || text.contains('|')
            || text.contains('>')
            || text.contains("getline")
        {
            self.inline("awk");
            // Judge the command strings it holds.
            for s in string_literals(text) {
                self.depth += 1;
                self.code(&s, Stdin::Inherit);
                self.depth -= 1;
            }
        }
    }

    /// sed: GNU sed's `e` command and `s///e` run shell code; `w` writes files.
    fn sed(&mut self, rest: &[Arg]) {
        let scripts: Vec<&Arg> = {
            let mut v = Vec::new();
            let mut idx = 0;
            let mut explicit = false;
            while let Some(a) = rest.get(idx) {
                let t = a.text.as_str();
                if matches!(t, "-e" | "--expression") {
                    if let Some(s) = rest.get(idx + 1) {
                        v.push(s);
                    }
                    explicit = true;
                    idx += 2;
                    continue;
                }
                if matches!(t, "-f" | "--file") {
                    self.inline("sed");
                    explicit = true;
                    idx += 2;
                    continue;
                }
                if t.starts_with('-') && t.len() > 1 {
                    idx += 1;
                    continue;
                }
                if !explicit {
                    v.push(a);
                }
                break;
            }
            v
        };
        for s in scripts {
            if s.dynamic.is_some() || sed_runs(&s.text) {
                self.inline("sed");
            }
        }
    }
}

/// Whether a sed script has an `e` command, an `s///e` flag or a `w` file command.
fn sed_runs(t: &str) -> bool {
    if t.contains("/e") || t.contains(" w ") || t.contains("/w ") {
        return true;
    }
    let chars: Vec<char> = t.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c != 'e' && *c != 'w' {
            continue;
        }
        let before = chars
            .get(..i)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|c| !c.is_whitespace());
        let after = chars.get(i + 1);
        let command_position = before.is_none_or(|b| {
            b.is_ascii_digit() || matches!(b, '$' | '/' | ';' | '{' | '}' | ',' | '\n' | '!')
        });
        let ends = after.is_none_or(|a| a.is_whitespace() || *a == ';' || *a == '}');
        if command_position && ends {
            return true;
        }
    }
    false
}

/// Splits `env -S` text into words by shell quoting rules.
fn split_words(text: &str, vars: &super::word::Vars, subs: &mut Substitutions) -> Vec<Arg> {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
            continue;
        }
        match (quote, c) {
            (q, '\\') if q != Some('\'') => escaped = true,
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, ' ' | '\t' | '\n') => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    word::arguments(words.iter().map(String::as_str), vars, subs)
}

/// The double-quoted string literals of an awk program.
fn string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        let mut escaped = false;
        for d in chars.by_ref() {
            if escaped {
                s.push(d);
                escaped = false;
            } else if d == '\\' {
                escaped = true;
            } else if d == '"' {
                break;
            } else {
                s.push(d);
            }
        }
        if !s.trim().is_empty() {
            out.push(s);
        }
    }
    out
}

/// A file name that is a stream, not a file: a process substitution or stdin.
fn is_stream(path: &str) -> bool {
    path.starts_with("/dev/fd/")
        || path.starts_with("/proc/self/fd/")
        || matches!(path, "/dev/stdin" | "-")
}

fn is_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with(|c: char| c.is_ascii_digit())
}

/// `python3.11`, `python2.7`.
fn python_version(name: &str) -> bool {
    name.strip_prefix("python")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}
