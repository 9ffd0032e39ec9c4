//! The guard's questions to the gateway and the answers, one JSON object per line
//! over a Unix socket that sshd forwards back through the session's own SSH
//! connection (ADR 0023). The guard speaks first:
//!
//! ```text
//! → {"op":"hello","version":1,"token":"…","pid":4242}
//! ← {"ok":true}
//! → {"op":"exec","id":1,"pid":4250,"path":"curl","exe":"/usr/bin/curl",…}
//! ← {"id":1,"allow":false,"message":"blocked by rule no_curl: …"}
//! ```
//!
//! Questions may be outstanding at once (a held approval does not stop other
//! processes); answers carry the question's id. If the connection fails, every
//! outstanding and later question is answered "no" — nothing runs unjudged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::inspect::Ancestor;

/// Protocol version the guard speaks.
pub const VERSION: u32 = 1;

/// A question: what a process is about to do.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Question {
    /// An exec.
    Exec {
        /// Process id of the caller.
        pid: i32,
        /// Path as written.
        path: String,
        /// The real program file.
        exe: String,
        /// For a script, the interpreter that runs it.
        #[serde(skip_serializing_if = "Option::is_none")]
        interpreter: Option<String>,
        /// The program is not a file on disk (memfd, deleted).
        anonymous: bool,
        /// argv as the program will receive it.
        argv: Vec<String>,
        /// Working directory.
        cwd: String,
        /// Parent chain, nearest first.
        parents: Vec<Ancestor>,
    },
    /// The session grew past another step of live tasks (processes and threads):
    /// may it go on growing? Asked once per step, never waited for by the process.
    Spawn {
        /// Process id of the process whose fork made the count.
        pid: i32,
        /// Its program.
        exe: String,
        /// Live tasks of the session, the new one included.
        tasks: usize,
        /// Parent chain, nearest first.
        parents: Vec<Ancestor>,
    },
    /// An outbound connect.
    Connect {
        /// Process id of the caller.
        pid: i32,
        /// The caller's program.
        exe: String,
        /// `inet`, `inet6`, or the family number for others.
        family: String,
        /// Address.
        address: String,
        /// Port.
        port: u16,
        /// Parent chain, nearest first.
        parents: Vec<Ancestor>,
    },
}

/// A notice: something the guard did without asking (no answer expected).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Notice {
    /// The session reached its task ceiling: the forking process and its new child
    /// were killed (a fork bomb ends here).
    Limit {
        /// The process that forked.
        pid: i32,
        /// Its program.
        exe: String,
        /// The ceiling.
        max_tasks: usize,
    },
    /// A process was killed at its exec because the program or argv the kernel
    /// loaded was not the one judged (the argv race, ADR 0023).
    Killed {
        /// Process id.
        pid: i32,
        /// What was judged.
        judged_exe: String,
        /// What was loaded.
        loaded_exe: String,
        /// The argv loaded.
        argv: Vec<String>,
    },
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    id: u64,
    #[serde(flatten)]
    body: &'a T,
}

/// The gateway's answer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Answer {
    /// Question id.
    #[serde(default)]
    pub id: u64,
    /// Whether the call may proceed.
    #[serde(default)]
    pub allow: bool,
    /// Why not (shown on the session's stderr).
    #[serde(default)]
    pub message: Option<String>,
}

impl Answer {
    fn refused(message: &str) -> Self {
        Self {
            id: 0,
            allow: false,
            message: Some(message.to_owned()),
        }
    }
}

/// What to do with an answer; runs on the thread that reads the gateway's answers,
/// so it must not wait.
pub type OnAnswer = Box<dyn FnOnce(Answer) + Send>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, OnAnswer>,
    next: u64,
    closed: Option<String>,
}

/// A connection to the gateway.
#[derive(Clone)]
pub struct Gateway {
    writer: Arc<Mutex<UnixStream>>,
    pending: Arc<Mutex<Pending>>,
    /// The session's ceiling on live tasks (from the gateway's hello answer).
    pub max_tasks: usize,
    /// Live tasks between `spawn` questions (from the hello answer).
    pub tasks_step: usize,
}

#[derive(Serialize)]
struct Hello<'a> {
    op: &'static str,
    version: u32,
    token: &'a str,
    pid: i32,
}

#[derive(Deserialize)]
struct HelloAnswer {
    ok: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    max_tasks: Option<usize>,
    #[serde(default)]
    tasks_step: Option<usize>,
}

/// Most tasks (processes and threads) a session may have when the gateway names no
/// limit.
pub const DEFAULT_MAX_TASKS: usize = 1024;

/// Live tasks between `spawn` questions when the gateway names no step.
pub const DEFAULT_TASKS_STEP: usize = 16;

impl Gateway {
    /// Connects to `socket` and introduces the guard with the session's `token`.
    pub fn connect(socket: &str, token: &str) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        let mut line = serde_json::to_string(&Hello {
            op: "hello",
            version: VERSION,
            token,
            pid: crate::sys::getpid(),
        })
        .map_err(std::io::Error::other)?;
        line.push('\n');
        (&stream).write_all(line.as_bytes())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        let hello: HelloAnswer = serde_json::from_str(&answer).map_err(|e| {
            std::io::Error::other(format!(
                "the gateway answered the guard's hello with {answer:?}: {e}"
            ))
        })?;
        if !hello.ok {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                hello
                    .message
                    .unwrap_or_else(|| "the gateway refused the guard".to_owned()),
            ));
        }
        let gw = Self {
            writer: Arc::new(Mutex::new(stream)),
            pending: Arc::new(Mutex::new(Pending::default())),
            max_tasks: hello.max_tasks.unwrap_or(DEFAULT_MAX_TASKS).max(1),
            tasks_step: hello.tasks_step.unwrap_or(DEFAULT_TASKS_STEP).max(1),
        };
        let pending = gw.pending.clone();
        std::thread::Builder::new()
            .name("gateway-reader".into())
            .spawn(move || read_answers(reader, &pending))?;
        Ok(gw)
    }

    /// Asks a question and waits for the answer. Any failure is a refusal.
    pub fn ask(&self, q: &Question) -> Answer {
        let (tx, rx) = mpsc::channel();
        self.ask_then(
            q,
            Box::new(move |a| {
                let _ = tx.send(a);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Answer::refused("the gateway connection closed"))
    }

    /// Asks a question without waiting: `then` gets the answer (a refusal on any
    /// failure) on the thread that reads answers, or here when the connection is
    /// already gone.
    pub fn ask_then(&self, q: &Question, then: OnAnswer) {
        let id = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(why) = &p.closed {
                let why = why.clone();
                drop(p);
                return then(Answer::refused(&why));
            }
            p.next += 1;
            let id = p.next;
            p.waiting.insert(id, then);
            id
        };
        if let Err(e) = self.send(&Envelope { id, body: q }) {
            self.close(&format!("cannot reach the gateway: {e}"));
        }
    }

    /// Sends a notice (no answer).
    pub fn notify(&self, n: &Notice) {
        if let Err(e) = self.send(&Envelope { id: 0, body: n }) {
            self.close(&format!("cannot reach the gateway: {e}"));
        }
    }

    fn send<T: Serialize>(&self, msg: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        (&*w).write_all(&line)
    }

    fn close(&self, why: &str) {
        close(&self.pending, why);
    }
}

fn close(pending: &Mutex<Pending>, why: &str) {
    let waiting: Vec<OnAnswer> = {
        let mut p = pending.lock().unwrap_or_else(PoisonError::into_inner);
        if p.closed.is_none() {
            p.closed = Some(why.to_owned());
        }
        p.waiting.drain().map(|(_, then)| then).collect()
    };
    for then in waiting {
        then(Answer::refused(why));
    }
}

fn read_answers(mut reader: BufReader<UnixStream>, pending: &Mutex<Pending>) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break close(pending, "the gateway closed the guard's connection"),
            Err(e) => break close(pending, &format!("the gateway connection failed: {e}")),
            Ok(_) => {}
        }
        let Ok(answer) = serde_json::from_str::<Answer>(&line) else {
            break close(pending, "the gateway sent an answer the guard cannot read");
        };
        let then = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&answer.id);
        if let Some(then) = then {
            then(answer);
        }
    }
}
