//! Runs the session's command under the filter and answers for it.
//!
//! The threads: the tracer (starts the command, then follows every process of the
//! session with ptrace and checks each exec once the new image is loaded); the
//! listener (receives seccomp notifications; reads an exec's program and argv and
//! sends the question itself, and hands a connect to a worker); the gateway's
//! reader (answers an exec's notification as soon as the gateway's answer arrives,
//! so a call held for approval holds no thread); one worker per waiting connect
//! (which, once allowed, connects and may block); and the task counter's (asks the
//! gateway each time the session grows past another step of live tasks).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use crate::filter::{self, nr};
use crate::inspect::{self, Destination, Program, Unjudgeable};
use crate::protocol::{Gateway, Notice, Question};
use crate::sys::{self, Answer, Notification};

/// What an allowed exec must turn out to be once loaded.
#[derive(Debug, Clone)]
struct Expect {
    program: Program,
    argv: Vec<String>,
}

/// The session's live task count against the policy (ADR 0023): the first time the
/// session grows past each multiple of `step` tasks, the guard asks the gateway (a
/// `spawn` question with the count, `ssh.process.tasks` in rules; the forking
/// process does not wait for its answer). A refused count `n` lowers the ceiling to
/// `n - 1`, and from then on a fork over it ends the forking process and its child.
/// At most one question is out at a time: before asking about the next step, the
/// tracer waits for the answer about the previous one, so a fork bomb runs at most
/// one step past a refused count however slow the gateway is (the ceiling a rule
/// sets is reached before `guard_max_tasks`). The target's `guard_max_tasks` is the
/// ceiling the policy starts from.
struct Tasks {
    /// A fork that brings the live count above this is killed.
    ceiling: AtomicUsize,
    /// Tasks between questions.
    step: usize,
    /// To the thread that asks, in order: the forking thread and the live count.
    ask: mpsc::Sender<(i32, usize)>,
    /// Questions answered so far (the tracer waits while the last one is out).
    answered: Mutex<usize>,
    answer: std::sync::Condvar,
}

/// Longest the tracer waits for the answer about a count before it takes the count
/// as refused (fail closed).
const TASKS_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Tasks {
    /// Notes one more answered question.
    fn answered(&self) {
        let mut n = self.answered.lock().unwrap_or_else(PoisonError::into_inner);
        *n += 1;
        self.answer.notify_all();
    }

    /// Waits until at least `n` questions are answered; false on time-out.
    fn wait_answered(&self, n: usize) -> bool {
        let guard = self.answered.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, timeout) = self
            .answer
            .wait_timeout_while(guard, TASKS_ANSWER_WAIT, |a| *a < n)
            .unwrap_or_else(PoisonError::into_inner);
        drop(guard);
        !timeout.timed_out()
    }
}

/// State shared by the tracer and the workers.
struct Shared {
    gateway: Gateway,
    tasks: Tasks,
    /// Allowed execs not yet seen at their exec stop, by calling thread id.
    expected: Mutex<HashMap<i32, Expect>>,
    /// The program each live task of the session runs, as the tracer saw it loaded
    /// (a fork inherits its parent's), for parent chains.
    programs: Mutex<HashMap<i32, String>>,
    /// The guard's own pid (the top of every parent chain).
    guard_pid: i32,
    /// The socket the guard talks to the gateway on: no session process may connect.
    guard_socket: Option<String>,
}

impl Shared {
    /// The parent chain of `process` up to the guard.
    fn ancestors(&self, process: i32) -> Vec<inspect::Ancestor> {
        inspect::ancestors(process, self.guard_pid, |p| {
            self.programs().get(&p).cloned()
        })
    }

    fn programs(&self) -> std::sync::MutexGuard<'_, HashMap<i32, String>> {
        self.programs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The command to run.
pub struct Session {
    /// The program (absolute path).
    pub program: String,
    /// argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// Environment variables removed from the session (the guard's own).
    pub env_remove: Vec<String>,
    /// The gateway socket path (connects to it are refused).
    pub guard_socket: Option<String>,
}

fn say(message: &str) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "gatehouse: {message}");
}

/// Runs `session` to its end and returns its exit code (128 + signal when killed).
/// Descendants still running when the session's first process ends are killed with
/// the guard (`PTRACE_O_EXITKILL`): nothing outlives its judge.
pub fn run(gateway: Gateway, session: Session) -> io::Result<i32> {
    sys::set_not_dumpable()?;
    sys::set_child_subreaper()?;
    let (ask, asks) = mpsc::channel();
    let shared = Arc::new(Shared {
        tasks: Tasks {
            ceiling: AtomicUsize::new(gateway.max_tasks),
            step: gateway.tasks_step,
            ask,
            answered: Mutex::new(0),
            answer: std::sync::Condvar::new(),
        },
        gateway,
        expected: Mutex::new(HashMap::new()),
        programs: Mutex::new(HashMap::new()),
        guard_pid: sys::getpid(),
        guard_socket: session.guard_socket.clone(),
    });
    let (ours, theirs) = sys::socketpair()?;
    let mut cmd = Command::new(&session.program);
    {
        use std::os::unix::process::CommandExt;
        if let Some((argv0, rest)) = session.argv.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    for k in &session.env_remove {
        cmd.env_remove(k);
    }
    sys::filter_before_exec(&mut cmd, filter::program(), theirs.as_raw_fd());

    // The tracer must be the thread that attaches, and it must attach before the
    // child execs; `Command::spawn` returns only after the exec, so it runs here on a
    // helper thread while the tracer below receives the listener and attaches.
    let spawner = std::thread::Builder::new()
        .name("spawn".into())
        .spawn(move || {
            let r = cmd.spawn();
            drop(theirs);
            // The child is reaped by the tracer's wait loop, not through `Child`.
            r.map(|c| c.id())
        })?;

    let (listener, child) = match sys::recv_fd(ours.as_raw_fd()) {
        Ok(v) => v,
        Err(e) => {
            let spawned = spawner
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("spawn thread panicked")));
            return Err(match spawned {
                Err(se) => io::Error::other(format!("cannot start `{}`: {se}", session.program)),
                Ok(_) => e,
            });
        }
    };
    let options = libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_EXITKILL;
    if let Err(e) = sys::ptrace_seize(child, options) {
        sys::kill(child, libc::SIGKILL);
        return Err(io::Error::other(format!("cannot trace the session: {e}")));
    }
    {
        let shared = shared.clone();
        let listener = Arc::new(listener);
        std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || listen(&shared, &listener))?;
    }
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("tasks".into())
            .spawn(move || count_tasks(&shared, &asks))?;
    }
    sys::write_byte(ours.as_raw_fd(), 1)?;
    let code = trace(&shared, child);
    // A failed exec of the first program is reported by `spawn`.
    if let Ok(Err(e)) = spawner.join() {
        say(&format!("cannot start `{}`: {e}", session.program));
    }
    Ok(code)
}

/// The listener: asks about each exec itself (the answer is sent from the reader
/// thread), and hands every other notification to an idle worker, starting one when
/// none is idle (a connect held for approval keeps its worker; the others go on).
fn listen(shared: &Arc<Shared>, listener: &Arc<OwnedFd>) {
    let fd = listener.as_raw_fd();
    let (tx, rx) = std::sync::mpsc::channel::<Notification>();
    let rx = Arc::new(Mutex::new(rx));
    let idle = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let n = match sys::notif_recv(fd) {
            Ok(n) => n,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOENT)) => continue,
            Err(_) => return,
        };
        if matches!(n.nr, nr::EXECVE | nr::EXECVEAT) {
            exec(shared, listener, &n);
            continue;
        }
        // Claim an idle worker, or start one: every queued call has a worker of its
        // own, never one busy with a held call.
        let claimed = idle
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |v| v.checked_sub(1),
            )
            .is_ok();
        if !claimed {
            let (shared, rx, idle) = (shared.clone(), rx.clone(), idle.clone());
            let spawned = std::thread::Builder::new()
                .name("judge".into())
                .spawn(move || worker(&shared, fd, &rx, &idle));
            if spawned.is_err() {
                // No thread to ask with: refuse rather than wait or allow.
                let _ = sys::notif_send(fd, n.id, Answer::Fail(libc::EAGAIN));
                continue;
            }
        }
        if tx.send(n).is_err() {
            return;
        }
    }
}

fn worker(
    shared: &Shared,
    fd: RawFd,
    rx: &Mutex<std::sync::mpsc::Receiver<Notification>>,
    idle: &std::sync::atomic::AtomicUsize,
) {
    use std::sync::atomic::Ordering;
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(n) = next else { return };
        let answer = judge(shared, fd, &n);
        let _ = sys::notif_send(fd, n.id, answer);
        idle.fetch_add(1, Ordering::AcqRel);
    }
}

fn errno(u: Unjudgeable) -> Answer {
    match u {
        Unjudgeable::Errno(e) => Answer::Fail(e),
    }
}

fn judge(shared: &Shared, listener: RawFd, n: &Notification) -> Answer {
    let r = match n.nr {
        nr::CONNECT => connect(shared, listener, n),
        _ => Ok(Answer::Fail(libc::ENOSYS)),
    };
    r.unwrap_or_else(errno)
}

/// An exec: reads what it will run and asks; the notification is answered when the
/// gateway's answer arrives (on the reader thread), or at once if it cannot be judged.
fn exec(shared: &Arc<Shared>, listener: &Arc<OwnedFd>, n: &Notification) {
    let fd = listener.as_raw_fd();
    let (q, expect) = match exec_question(shared, fd, n) {
        Ok(v) => v,
        Err(u) => {
            let _ = sys::notif_send(fd, n.id, errno(u));
            return;
        }
    };
    let (shared2, listener, tid, id) = (shared.clone(), listener.clone(), n.pid, n.id);
    shared.gateway.ask_then(
        &q,
        Box::new(move |a| {
            let answer = if a.allow {
                shared2
                    .expected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(tid, expect);
                Answer::Continue
            } else {
                refused(a, "exec");
                Answer::Fail(libc::EACCES)
            };
            let _ = sys::notif_send(listener.as_raw_fd(), id, answer);
        }),
    );
}

/// The question an exec raises, and what it must turn out to be once loaded.
fn exec_question(
    shared: &Shared,
    listener: RawFd,
    n: &Notification,
) -> Result<(Question, Expect), Unjudgeable> {
    let (dirfd, path_addr, argv_addr, flags) = match n.nr {
        nr::EXECVEAT => (
            i32::try_from(n.args[0] as i64).unwrap_or(-1),
            n.args[1],
            n.args[2],
            n.args[4],
        ),
        _ => (libc::AT_FDCWD, n.args[0], n.args[1], 0),
    };
    let mut mem = inspect::Mem::new(n.pid);
    let path = mem.cstr(path_addr, inspect::PATH_MAX)?;
    // The calling thread's process, read once for the question, the path and the
    // parent chain.
    let process = inspect::tgid(n.pid).unwrap_or(n.pid);
    // First what it will run: an exec that will fail (a search along `PATH` tries
    // several) is answered with its error before anything else is read.
    let program = inspect::resolve(n.pid, process, dirfd, &path, flags)?;
    let argv = mem.argv(argv_addr)?;
    let cwd = inspect::cwd(n.pid);
    // What was read belongs to the caller only if it is still waiting.
    if !sys::notif_id_valid(listener, n.id) {
        return Err(Unjudgeable::Errno(libc::ESRCH));
    }
    let q = Question::Exec {
        pid: process,
        path: program.path.clone(),
        exe: program.exe.clone(),
        interpreter: program.interpreter.clone(),
        anonymous: program.anonymous,
        argv: argv.clone(),
        cwd,
        parents: shared.ancestors(process),
    };
    Ok((q, Expect { program, argv }))
}

/// Shows a refusal on the session's stderr.
fn refused(a: crate::protocol::Answer, what: &str) {
    say(&a
        .message
        .unwrap_or_else(|| format!("{what} refused by the gateway policy")));
}

/// Asks the gateway and waits; a refusal is shown on the session's stderr.
fn allowed(shared: &Shared, q: &Question, what: &str) -> bool {
    let a = shared.gateway.ask(q);
    let allow = a.allow;
    if !allow {
        refused(a, what);
    }
    allow
}

fn connect(shared: &Shared, listener: RawFd, n: &Notification) -> Result<Answer, Unjudgeable> {
    let fd = i32::try_from(n.args[0] as i64).unwrap_or(-1);
    let (raw, dest) = inspect::read_sockaddr(n.pid, n.args[1], n.args[2])?;
    if !sys::notif_id_valid(listener, n.id) {
        return Ok(Answer::Fail(libc::ESRCH));
    }
    let (family, address, port) = match dest {
        Destination::Local => return Ok(Answer::Continue),
        Destination::Unix(path) => {
            // Local IPC is not judged; the gateway's own socket is not reachable.
            let ours = shared.guard_socket.as_deref() == Some(path.as_str());
            return Ok(if ours {
                Answer::Fail(libc::EACCES)
            } else {
                Answer::Continue
            });
        }
        Destination::Other(f) => (f.to_string(), String::new(), 0),
        Destination::Inet {
            family,
            address,
            port,
        } => (family.to_owned(), address, port),
    };
    let process = inspect::tgid(n.pid).unwrap_or(n.pid);
    let q = Question::Connect {
        pid: process,
        exe: inspect::running(n.pid).map(|(e, _)| e).unwrap_or_default(),
        family,
        address,
        port,
        parents: shared.ancestors(process),
    };
    if !allowed(shared, &q, "connect") {
        return Ok(Answer::Fail(libc::EACCES));
    }
    // Connect the caller's own socket to the address that was judged, from here:
    // the caller's memory may have changed since it was read, the judged bytes have
    // not.
    let sock = sys::steal_fd(process, fd)?;
    Ok(match sys::connect_raw(sock.as_raw_fd(), &raw) {
        Ok(()) => Answer::Value(0),
        Err(e) => Answer::Fail(e),
    })
}

/// Asks the gateway about each count the tracer sends (a `spawn` question), in
/// order; a refused count (or no gateway) lowers the ceiling below it.
fn count_tasks(shared: &Shared, asks: &mpsc::Receiver<(i32, usize)>) {
    let t = &shared.tasks;
    for (thread, count) in asks {
        let pid = inspect::tgid(thread).unwrap_or(thread);
        let q = Question::Spawn {
            pid,
            exe: inspect::running(thread).map(|(e, _)| e).unwrap_or_default(),
            tasks: count,
            parents: shared.ancestors(pid),
        };
        if !allowed(shared, &q, "the session's growth") {
            t.ceiling
                .fetch_min(count.saturating_sub(1).max(1), Ordering::AcqRel);
        }
        t.answered();
    }
}

/// Whether the argv the kernel loaded is the one judged. For a script the kernel
/// puts the interpreter (and its argument) and the script's path first and keeps the
/// rest.
fn argv_matches(e: &Expect, loaded: &[String]) -> bool {
    if e.program.interpreter.is_none() {
        if e.argv.is_empty() {
            return loaded.is_empty() || loaded == [String::new()];
        }
        return loaded == e.argv.as_slice();
    }
    let tail = e.argv.get(1..).unwrap_or_default();
    loaded.len() > tail.len() && loaded.ends_with(tail)
}

/// The tracer loop; returns the session's exit code.
fn trace(shared: &Shared, top: i32) -> i32 {
    // Live tasks of the session (processes and threads), for the ceiling.
    let mut live: std::collections::HashSet<i32> = std::collections::HashSet::from([top]);
    let mut limit_reported = false;
    let t = &shared.tasks;
    // The next count to ask about: each multiple of the step, passed once.
    let mut ask_above = t.step;
    let mut asked = 0usize;
    loop {
        let (pid, status) = match sys::wait_any() {
            Ok(v) => v,
            Err(_) => return 126,
        };
        if let Some(code) = status.exited() {
            live.remove(&pid);
            shared.programs().remove(&pid);
            if pid == top {
                return code;
            }
            continue;
        }
        if let Some(sig) = status.signaled() {
            live.remove(&pid);
            shared.programs().remove(&pid);
            if pid == top {
                return 128 + sig;
            }
            continue;
        }
        let Some((sig, event)) = status.stopped() else {
            continue;
        };
        let resume = match event {
            libc::PTRACE_EVENT_EXEC => {
                if exec_stop(shared, pid) {
                    0
                } else {
                    sys::kill(pid, libc::SIGKILL);
                    0
                }
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                if let Some(child) = sys::ptrace_event_msg(pid)
                    .ok()
                    .and_then(|c| i32::try_from(c).ok())
                {
                    live.insert(child);
                    {
                        let mut programs = shared.programs();
                        if let Some(p) = programs.get(&pid).cloned() {
                            programs.insert(child, p);
                        }
                    }
                    // One question out at a time: before the next step is asked
                    // about, the previous answer is in (the whole session waits
                    // meanwhile), and it may have lowered the ceiling.
                    if live.len() > ask_above && asked > 0 && !t.wait_answered(asked) {
                        t.ceiling.fetch_min(live.len() - 1, Ordering::AcqRel);
                    }
                    let ceiling = t.ceiling.load(Ordering::Acquire);
                    if live.len() > ceiling {
                        // Over the ceiling: the new task and the one that made it end.
                        sys::kill(child, libc::SIGKILL);
                        sys::kill(pid, libc::SIGKILL);
                        if !limit_reported {
                            limit_reported = true;
                            let exe = inspect::running(pid)
                                .map(|(e, _)| e)
                                .unwrap_or_else(|_| "a process that has ended".to_owned());
                            say(&format!(
                                "the session reached its limit of {ceiling} processes and threads; \
                                 `{exe}` (pid {pid}) and the task it started were killed"
                            ));
                            shared.gateway.notify(&Notice::Limit {
                                pid,
                                exe,
                                max_tasks: ceiling,
                            });
                        }
                    } else if live.len() > ask_above {
                        ask_above += t.step;
                        asked += 1;
                        if t.ask.send((pid, live.len())).is_err() {
                            // No one to ask: the policy cannot allow more.
                            t.ceiling.fetch_min(live.len() - 1, Ordering::AcqRel);
                        }
                    }
                }
                0
            }
            libc::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // Group-stop (job control): stay stopped until continued.
                    let _ = sys::ptrace_listen(pid);
                    continue;
                }
                0
            }
            // A signal on its way to the tracee: deliver it.
            _ => sig,
        };
        let _ = sys::ptrace_cont(pid, resume);
    }
}

/// At an exec stop: the new image is loaded and has not run an instruction. It must
/// be the program that was judged (same file) with the argv that was judged.
fn exec_stop(shared: &Shared, pid: i32) -> bool {
    let caller = sys::ptrace_event_msg(pid)
        .ok()
        .and_then(|t| i32::try_from(t).ok())
        .unwrap_or(pid);
    let expect = {
        let mut m = shared
            .expected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        m.remove(&caller).or_else(|| m.remove(&pid))
    };
    let loaded_id = inspect::running_id(pid).ok();
    let argv = inspect::cmdline(pid).unwrap_or_default();
    let ok = expect
        .as_ref()
        .is_some_and(|e| Some(e.program.runs) == loaded_id && argv_matches(e, &argv));
    {
        let mut programs = shared.programs();
        // An exec from another thread: that thread is gone, the process has its id.
        programs.remove(&caller);
        match expect.as_ref().filter(|_| ok) {
            // `/proc/PID/exe` names the interpreter of a script.
            Some(e) => programs.insert(
                pid,
                e.program
                    .interpreter
                    .clone()
                    .unwrap_or_else(|| e.program.exe.clone()),
            ),
            None => programs.remove(&pid),
        };
    }
    if !ok {
        let loaded_exe = inspect::running(pid).map(|(e, _)| e).unwrap_or_default();
        let judged = expect.map(|e| e.program.exe).unwrap_or_default();
        say(&format!(
            "killed process {pid}: it loaded `{loaded_exe}` {argv:?}, not the exec that was judged (`{judged}`)"
        ));
        shared.gateway.notify(&Notice::Killed {
            pid,
            judged_exe: judged,
            loaded_exe,
            argv,
        });
    }
    ok
}
